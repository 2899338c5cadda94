"""`hubbub proxy-config nginx`: what the generated config says, and that nginx accepts it.

deploy/nginx.conf is this command's output for the three-node example below; a test keeps the two
the same. `nginx -t` (the Debian binary, as the other tiers use) checks both the conf.d file and
the `--full` form; it parses the config without binding any port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hubbub.cli.proxy_config import NginxOptions, render_full, render_nginx
from hubbub.config import load_config
from tests.support.nginx import nginx_bin

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ARGS = [
    "--upstream",
    "10.0.0.11:8065",
    "--upstream",
    "10.0.0.12:8065",
    "--upstream",
    "10.0.0.13:8065",
    "--server-name",
    "chat.example.com",
]


def options(**kw: object) -> NginxOptions:
    values: dict[str, object] = {
        "upstreams": ("127.0.0.1:8065", "127.0.0.1:8066", "127.0.0.1:8067"),
        **kw,
    }
    return NginxOptions(**values)


def block(text: str, header: str) -> str:
    """The body of the first `header {...}` block (braces balanced; none occur in strings)."""
    start = text.index(header + " {") + len(header) + 2
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    raise AssertionError(f"unbalanced block {header!r}")


def directives(body: str) -> list[str]:
    """Top-level directives of a block body, comments and nested blocks left out."""
    out, depth = [], 0
    for raw in body.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if depth == 0 and line.endswith(";"):
            out.append(" ".join(line.rstrip(";").split()))
        depth += line.count("{") - line.count("}")
    return out


def test_upstream_lists_every_node_with_passive_checks_and_keepalive() -> None:
    text = render_nginx(options())
    upstream = directives(block(text, "upstream hubbub"))
    assert upstream[:3] == [
        "server 127.0.0.1:8065 max_fails=2 fail_timeout=10s",
        "server 127.0.0.1:8066 max_fails=2 fail_timeout=10s",
        "server 127.0.0.1:8067 max_fails=2 fail_timeout=10s",
    ]
    assert "keepalive 32" in upstream
    # Well below the nodes' keep-alive (ServiceSettings.IdleTimeout), so nginx never reuses a
    # connection the node is closing.
    assert "keepalive_timeout 4s" in upstream


def test_connection_upgrade_map() -> None:
    text = render_nginx(options())
    body = block(text, "map $http_upgrade $connection_upgrade")
    assert directives(body) == ["default upgrade", "'' close"]


def test_websocket_location_upgrades_and_outlives_the_ping() -> None:
    text = render_nginx(options())
    ws = directives(block(text, "location ~ /api/v[0-9]+/(users/)?websocket$"))
    for expected in (
        "proxy_pass http://hubbub",
        "proxy_http_version 1.1",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
        "proxy_set_header X-Forwarded-Proto $scheme",
        "proxy_set_header Host $host",
        "proxy_read_timeout 75s",
        "proxy_send_timeout 75s",
    ):
        assert expected in ws, expected
    pattern = re.compile("/api/v[0-9]+/(users/)?websocket$")
    assert pattern.search("/api/v4/websocket") and pattern.search("/api/v4/users/websocket")
    assert not pattern.search("/api/v4/websocket/extra")


@pytest.mark.parametrize(("ping", "timeout"), [(10, 60), (25, 75), (40, 120)])
def test_websocket_timeout_is_max_of_60s_and_three_pings(ping: int, timeout: int) -> None:
    text = render_nginx(options(ping_interval=ping))
    ws = directives(block(text, "location ~ /api/v[0-9]+/(users/)?websocket$"))
    assert f"proxy_read_timeout {timeout}s" in ws


def test_plain_requests_keep_upstream_connections_and_retry_elsewhere() -> None:
    text = render_nginx(options())
    plain = directives(block(text, "location /"))
    for expected in (
        "proxy_http_version 1.1",
        'proxy_set_header Connection ""',
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
        "proxy_set_header X-Forwarded-Proto $scheme",
        "proxy_next_upstream error timeout http_502 http_503",
    ):
        assert expected in plain, expected


def test_body_size_follows_max_file_size() -> None:
    default = load_config(None, environ={}).settings
    cfg = NginxOptions.from_settings(default, ["127.0.0.1:8065"], "80", "_")
    server = directives(block(render_nginx(cfg), "server"))
    assert "client_max_body_size 101m" in server  # 100 MiB plus the multipart envelope
    small = NginxOptions(upstreams=("h:1",), max_file_size=2**20)
    assert "client_max_body_size 2m" in directives(block(render_nginx(small), "server"))


def test_health_check_is_explained() -> None:
    text = render_nginx(options())
    comments = " ".join(line.strip("# ") for line in text.splitlines() if line.startswith("#"))
    assert "/api/v4/system/ping" in comments
    assert "passive" in comments and "max_fails" in comments


def test_listen_and_server_name() -> None:
    server = directives(
        block(
            render_nginx(options(listen="127.0.0.1:8080", server_name="chat.example.com")), "server"
        )
    )
    assert server[:2] == ["listen 127.0.0.1:8080", "server_name chat.example.com"]
    assert "listen 80" in directives(block(render_nginx(options(listen="80")), "server"))


@pytest.mark.parametrize(
    "bad",
    [
        {"upstreams": ()},
        {"upstreams": ("127.0.0.1",)},
        {"upstreams": ("127.0.0.1:0",)},
        {"upstreams": ("host:8065; evil",)},
        {"listen": "eighty"},
        {"server_name": "a; b"},
    ],
)
def test_bad_arguments_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render_nginx(options(**bad))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("MM_") and k != "HUBBUB_CONFIG"
    }
    return subprocess.run(
        [sys.executable, "-m", "hubbub.cli.main", "proxy-config", "nginx", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_example_is_the_commands_output(tmp_path: Path) -> None:
    result = run_cli(*EXAMPLE_ARGS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (REPO / "deploy" / "nginx.conf").read_text() == result.stdout, (
        "deploy/nginx.conf is stale: regenerate it with "
        "`hubbub proxy-config nginx " + " ".join(EXAMPLE_ARGS) + " > deploy/nginx.conf`"
    )


def test_cli_reads_the_ping_interval_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"ServiceSettings": {"WebsocketPingIntervalSeconds": 50}, '
        '"FileSettings": {"MaxFileSize": 10485760}}'
    )
    result = run_cli("--upstream", "127.0.0.1:8065", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "proxy_read_timeout 150s;" in result.stdout
    assert "client_max_body_size 11m;" in result.stdout


def test_cli_refuses_a_bad_upstream(tmp_path: Path) -> None:
    result = run_cli("--upstream", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "host:port" in result.stderr and result.stdout == ""


def nginx_test(conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx_bin(), "-t", "-c", str(conf), "-p", f"{prefix}/", "-e", str(prefix / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nginx_accepts_the_deploy_example(tmp_path: Path) -> None:
    wrapper = render_full(f"include {REPO / 'deploy' / 'nginx.conf'};\n", prefix_dir=str(tmp_path))
    conf = tmp_path / "nginx.conf"
    conf.write_text(wrapper)
    result = nginx_test(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_accepts_the_full_form(tmp_path: Path) -> None:
    result = run_cli(
        "--upstream",
        "127.0.0.1:8065",
        "--upstream",
        "[::1]:8066",
        "--listen",
        "127.0.0.1:8080",
        "--full",
        "--prefix-dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    conf = tmp_path / "nginx.conf"
    conf.write_text(result.stdout)
    assert f"pid {tmp_path}/nginx.pid;" in result.stdout
    checked = nginx_test(conf, tmp_path)
    assert checked.returncode == 0, checked.stderr
