"""`hubbub doctor` against a real nginx, configured well and badly on purpose, in front of a real
`hubbub serve`; the assertions are on the diagnosis.

The node pings every 5 s (`WebsocketPingIntervalSeconds`) so that nginx's idle timeout can be
short and the test fast: `proxy_read_timeout 3s` is below the ping interval, and the idle
measurement is bounded at 11 s (more than two pings) with `--idle-max`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ops_nginx import ProxyShape, start_proxy
from tests.support.rest import Account, Rest
from tests.support.server import ServerProcess, start_server

PING = 5
IDLE_MAX = 11


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("doctor-node"),
        {"MM_SERVICESETTINGS_WEBSOCKETPINGINTERVALSECONDS": str(PING)},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin(node: ServerProcess) -> Account:
    rest = Rest(node.url)
    try:
        return rest.user(None, "admin")
    finally:
        rest.close()


def doctor(url: str, token: str | None, workdir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    args = [sys.executable, "-m", "hubbub.cli.main", "doctor", "--url", url, "--json"]
    args += ["--idle-max", str(IDLE_MAX), *extra]
    if token:
        args += ["--token", token]
    env = {k: v for k, v in os.environ.items() if k != "HUBBUB_TOKEN"}
    done = subprocess.run(
        args, capture_output=True, text=True, cwd=workdir, env=env, timeout=IDLE_MAX + 60
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["exit_status"] == done.returncode
    return done.returncode, report


def finding(report: dict[str, Any], check: str) -> dict[str, Any]:
    matches = [f for f in report["findings"] if f["check"] == check]
    assert len(matches) == 1, [f["check"] for f in report["findings"]]
    return matches[0]


def run_through(
    node: ServerProcess, admin: Account, shape: ProxyShape, tmp_path: Path
) -> tuple[int, dict[str, Any], float]:
    proxy = start_proxy([node.port], shape)
    try:
        started = time.monotonic()
        status, report = doctor(f"http://127.0.0.1:{proxy.port}", admin.token, tmp_path)
        return status, report, time.monotonic() - started
    finally:
        proxy.stop()


def test_a_well_configured_proxy_passes(
    node: ServerProcess, admin: Account, tmp_path: Path
) -> None:
    status, report, _ = run_through(node, admin, ProxyShape(read_timeout="75s"), tmp_path)
    for check in (
        "proxy: health check",
        "proxy: websocket upgrade",
        "proxy: HTTP version to hubbub",
        "proxy: client address and scheme",
        "proxy: idle websocket timeout",
    ):
        assert finding(report, check)["status"] == "ok", finding(report, check)
    idle = finding(report, "proxy: idle websocket timeout")["data"]
    assert idle["cut_after_seconds"] is None
    assert idle["held_seconds"] >= IDLE_MAX - 0.5
    assert idle["ping_interval_seconds"] == PING
    # The node was found through the cluster view and checked directly.
    checks = [f["check"] for f in report["findings"]]
    assert any(c.startswith("node ") and c.endswith(": ping") for c in checks), checks
    assert any(c.endswith(": open-file limit") for c in checks), checks
    assert not [f for f in report["findings"] if f["status"] == "fail"]
    assert status == 0


def test_no_upgrade_headers_is_named_with_its_fix(
    node: ServerProcess, admin: Account, tmp_path: Path
) -> None:
    status, report, elapsed = run_through(node, admin, ProxyShape(upgrade_headers=False), tmp_path)
    upgrade = finding(report, "proxy: websocket upgrade")
    assert upgrade["status"] == "fail"
    assert "does not pass the Upgrade header" in upgrade["summary"]
    assert "proxy_set_header Upgrade $http_upgrade" in upgrade["fix"]
    assert upgrade["data"]["status"] == 400
    # No websocket, so no idle measurement (and no waiting for one).
    assert not [f for f in report["findings"] if f["check"] == "proxy: idle websocket timeout"]
    assert elapsed < IDLE_MAX
    assert status == 1


def test_a_proxy_timeout_below_the_ping_interval_is_measured(
    node: ServerProcess, admin: Account, tmp_path: Path
) -> None:
    status, report, _ = run_through(node, admin, ProxyShape(read_timeout="3s"), tmp_path)
    assert finding(report, "proxy: websocket upgrade")["status"] == "ok"
    idle = finding(report, "proxy: idle websocket timeout")
    assert idle["status"] == "fail"
    assert 2.5 <= idle["data"]["cut_after_seconds"] <= 4.5  # nginx's 3 s, measured
    assert "before hubbub's ping every 5 s" in idle["summary"]
    assert "proxy_read_timeout" in idle["fix"]
    assert status == 1


def test_a_timeout_between_one_and_two_pings_is_a_warning(
    node: ServerProcess, admin: Account, tmp_path: Path
) -> None:
    _, report, _ = run_through(node, admin, ProxyShape(read_timeout="7s"), tmp_path)
    idle = finding(report, "proxy: idle websocket timeout")
    assert idle["status"] == "warn", idle
    assert 6.5 <= idle["data"]["cut_after_seconds"] <= 8.5


def test_http_1_0_to_the_upstream_is_named(
    node: ServerProcess, admin: Account, tmp_path: Path
) -> None:
    status, report, _ = run_through(
        node, admin, ProxyShape(http_version="1.0", read_timeout="3s"), tmp_path
    )
    version = finding(report, "proxy: HTTP version to hubbub")
    assert version["status"] == "fail"
    assert "HTTP/1.0" in version["summary"]
    assert "proxy_http_version 1.1" in version["fix"]
    assert status == 1


def test_straight_to_a_node_no_forwarded_address_and_an_empty_site_url(
    node: ServerProcess, admin: Account, tmp_path: Path
) -> None:
    """Without a proxy the node sees no X-Forwarded-For: the doctor says what that means."""
    _, report = doctor(node.url, admin.token, tmp_path, "--skip-idle")
    forwarded = finding(report, "proxy: client address and scheme")
    assert forwarded["status"] == "warn"
    assert "does not send X-Forwarded-For" in forwarded["summary"]
    assert "proxy_add_x_forwarded_for" in forwarded["fix"]
    site = finding(report, "site URL")
    assert site["status"] == "warn" and "SiteURL is empty" in site["summary"]


def test_without_a_token_the_idle_timeout_is_not_measured(
    node: ServerProcess, tmp_path: Path
) -> None:
    proxy = start_proxy([node.port], ProxyShape(read_timeout="3s"))
    try:
        _, report = doctor(f"http://127.0.0.1:{proxy.port}", None, tmp_path)
    finally:
        proxy.stop()
    assert finding(report, "proxy: websocket upgrade")["status"] == "ok"
    assert finding(report, "proxy: idle websocket timeout")["status"] == "skip"
    assert finding(report, "node facts")["status"] == "skip"


def test_a_proxy_missing_from_trusted_proxies_is_named(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A node that trusts no proxy (`TrustedProxies` empty) behind nginx: the doctor says the
    forwarded address is ignored and which entry to add."""
    server = start_server(
        tmp_path_factory.mktemp("doctor-untrusting"),
        {"MM_SERVICESETTINGS_TRUSTEDPROXIES": "[]"},
    )
    try:
        rest = Rest(server.url)
        try:
            admin = rest.user(None, "admin")
        finally:
            rest.close()
        proxy = start_proxy([server.port])
        try:
            status, report = doctor(
                f"http://127.0.0.1:{proxy.port}", admin.token, tmp_path, "--skip-idle"
            )
        finally:
            proxy.stop()
    finally:
        server.stop()
    forwarded = finding(report, "proxy: client address and scheme")
    assert forwarded["status"] == "fail", forwarded
    assert "does not trust it" in forwarded["summary"]
    assert '"127.0.0.1/32"' in forwarded["fix"]
    assert forwarded["data"]["client"] == "127.0.0.1"  # the proxy's, not the forwarded one
    assert status == 1
