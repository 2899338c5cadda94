"""`hubbub doctor`'s judgement without sockets: each observation and the finding it becomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub.cli.main import main
from hubbub.doctor import checks


def _idle(cut: float | None, held: float = 0.0, pings: int = 0, close: int | None = None):
    return checks.idle_timeout(
        cut_after=cut, held_for=held, idle_max=300, ping_interval=25, pings=pings, close_code=close
    )


def test_idle_timeout_against_the_ping_interval() -> None:
    assert _idle(20).status == "fail"  # cut before the first ping
    assert _idle(25).status == "fail"  # the ALB-60 s vs server-60 s race, at 25
    race = _idle(40)
    assert race.status == "warn" and "less than two" in race.summary
    assert _idle(60).status == "ok"
    assert _idle(None, held=300).status == "ok"  # never cut within the bound
    assert _idle(None, held=30).status == "warn"  # not measured long enough to tell
    assert _idle(None, held=300, pings=3).status == "skip"  # the server pinged: no admin
    assert _idle(None, held=12, close=1012).status == "warn"
    fix = _idle(20).fix
    assert "proxy_read_timeout" in fix and "ALB" in fix and "at most 10" in fix


def test_upgrade_diagnosis_from_what_the_node_saw() -> None:
    assert checks.upgrade(101, "Switching Protocols", "", "").status == "ok"
    dropped = checks.upgrade(400, "Bad Request", "HTTP/1.1; upgrade=; connection=close", "")
    assert dropped.status == "fail" and "Upgrade header" in dropped.summary
    no_conn = checks.upgrade(400, "Bad Request", "HTTP/1.1; upgrade=websocket; connection=", "")
    assert no_conn.status == "fail" and "Connection: upgrade" in no_conn.summary
    assert "no node" in checks.upgrade(502, "Bad Gateway", "", "").summary
    assert checks.upgrade(0, "", "", "refused").status == "fail"
    assert checks.upstream_http_version("HTTP/1.1; upgrade=; connection=close").status == "ok"
    assert checks.upstream_http_version("HTTP/1.0; upgrade=; connection=close").status == "fail"
    assert checks.upstream_http_version("").status == "skip"


def test_forwarded_headers_and_trust() -> None:
    base = {"peer": "10.0.0.2", "client": "10.0.0.2", "scheme": "http"}
    assert checks.forwarded({**base, "x_forwarded_for": ""}, []).status == "warn"
    untrusted = checks.forwarded(
        {**base, "x_forwarded_for": "203.0.113.9", "peer_trusted": False}, ["127.0.0.1/32"]
    )
    assert untrusted.status == "fail" and '"10.0.0.2/32"' in untrusted.fix
    trusted = {**base, "client": "203.0.113.9", "x_forwarded_for": "203.0.113.9"}
    no_proto = checks.forwarded({**trusted, "peer_trusted": True}, [])
    assert no_proto.status == "warn"
    ok = checks.forwarded({**trusted, "peer_trusted": True, "x_forwarded_proto": "https"}, [])
    assert ok.status == "ok"


def test_site_url_compares_origins() -> None:
    assert checks.site_url("https://chat.example.com", "").status == "warn"
    assert checks.site_url("https://chat.example.com/", "https://chat.example.com:443").status == (
        "ok"
    )
    assert checks.site_url("https://chat.example.com", "http://chat.example.com").status == "fail"


def test_clock_skew_thresholds() -> None:
    assert checks.clock("n", {"skew_ms": 12.0}).status == "ok"
    assert checks.clock("n", {"skew_ms": -400.0}).status == "warn"
    late = checks.clock("n", {"skew_ms": -2500.0})
    assert late.status == "fail" and "behind" in late.summary and "NTP" in late.fix
    assert checks.clock("n", {"database_ms": None, "note": "SQLite"}).status == "skip"


def test_host_limits_and_kernel_settings() -> None:
    assert checks.host_limits("n", {"nofile_soft": 65536}, 0).status == "ok"
    assert checks.host_limits("n", {"nofile_soft": 1024}, 0).status == "warn"
    short = checks.host_limits("n", {"nofile_soft": 8192}, 20000)
    assert short.status == "fail" and "LimitNOFILE=65536" in short.fix
    tuned = {
        "net.core.somaxconn": "4096",
        "net.ipv4.tcp_max_syn_backlog": "8192",
        "net.ipv4.ip_local_port_range": "1025 65000",
        "net.ipv4.tcp_fin_timeout": "30",
        "net.ipv4.tcp_tw_reuse": "1",
    }
    assert [f.status for f in checks.kernel("n", tuned)] == ["ok"] * 5
    stock = {
        "net.core.somaxconn": "128",
        "net.ipv4.tcp_max_syn_backlog": "512",
        "net.ipv4.ip_local_port_range": "32768 60999",
        "net.ipv4.tcp_fin_timeout": "60",
        "net.ipv4.tcp_tw_reuse": "0",
    }
    found = checks.kernel("n", stock)
    assert [f.status for f in found] == ["warn"] * 5
    assert all(f.fix.startswith("sysctl -w") for f in found)


def test_exit_status_and_cluster_view() -> None:
    red = checks.node_state(
        "node1",
        {"state": "red", "reasons": ["config mismatch: TeamSettings.SiteName"], "version": "1"},
    )
    assert red.status == "fail" and "TeamSettings.SiteName" in red.summary
    assert "same on every node" in red.fix
    green = checks.node_state("node0", {"state": "green", "reasons": ["ok"]})
    assert checks.exit_status([green]) == 0
    assert checks.exit_status([green, red]) == 1
    mix = "version mix: 0.1.0 on node1; 0.2.0 on node0 (a rolling upgrade, within the window)"
    upgrading = checks.node_state("node0", {"state": "yellow", "reasons": [mix]})
    assert upgrading.status == "warn" and "finish the rolling upgrade" in upgrading.fix
    assert checks.exit_status([green, upgrading]) == 1  # a warning needs attention too


def test_the_deploy_files_pass_the_doctor() -> None:
    """deploy/sysctl.d/90-hubbub.conf and the systemd unit's LimitNOFILE are what the doctor
    asks for: an operator who installs them gets no kernel or open-file warning."""
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    sysctl = {}
    for line in (deploy / "sysctl.d" / "90-hubbub.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            sysctl[key.strip()] = value.strip()
    found = checks.kernel("n", sysctl)
    assert len(found) == 5 and all(f.status == "ok" for f in found), found
    unit = (deploy / "hubbub.service").read_text()
    limit = next(int(x.split("=")[1]) for x in unit.splitlines() if x.startswith("LimitNOFILE="))
    assert checks.host_limits("n", {"nofile_soft": limit}, 0).status == "ok"


def test_doctor_refuses_a_url_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--url", "ftp://chat.example.com"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err
