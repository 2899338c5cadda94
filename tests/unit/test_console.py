"""The operator console's rules (observability/console.py, node_report.py, websocket_stats.py):
node states and their reasons in words, config mismatches named by setting without publishing a
value, and websocket figures over a window."""

from __future__ import annotations

from typing import Any

from hubbub.cluster.discovery import NodeInfo
from hubbub.config import load_config
from hubbub.observability.console import assess
from hubbub.observability.metrics import Metrics
from hubbub.observability.node_report import setting_digests
from hubbub.observability.websocket_stats import WebsocketStats

NOW = 1_000_000


def _digests(**env: str) -> dict[str, str]:
    return setting_digests(load_config(None, environ=env).settings)


def _node(
    node_id: str,
    *,
    age: float = 1.0,
    version: str = "1.0",
    config_hash: str = "h1",
    props: dict[str, Any] | None = None,
) -> NodeInfo:
    return NodeInfo(
        id=node_id,
        cluster_name="c",
        hostname=node_id,
        port=8065,
        create_at=0,
        last_ping_at=NOW - int(age * 1000),
        version=version,
        schema_version="0002",
        config_hash=config_hash,
        props={"node_name": node_id, "settings": _digests(), **(props or {})},
    )


def _states(*nodes: NodeInfo, me: str = "a", leader: str | None = "a") -> dict[str, Any]:
    view = assess(nodes, now=NOW, heartbeat_seconds=5, live_seconds=20, me=me, leader_id=leader)
    return {n["node_name"]: (n["state"], n["reasons"]) for n in view}


def test_healthy_nodes_are_green_and_the_leader_is_marked() -> None:
    view = assess(
        [_node("a"), _node("b")],
        now=NOW,
        heartbeat_seconds=5,
        live_seconds=20,
        me="a",
        leader_id="b",
    )
    assert [(n["state"], n["reasons"], n["leader"]) for n in view] == [
        ("green", ["ok"], False),
        ("green", ["ok"], True),
    ]


def test_a_config_mismatch_names_the_settings() -> None:
    odd = _node(
        "c",
        config_hash="h2",
        props={
            "settings": _digests(
                MM_TEAMSETTINGS_SITENAME="Other", MM_TEAMSETTINGS_MAXUSERSPERTEAM="7"
            )
        },
    )
    states = _states(_node("a"), _node("b"), odd)
    assert states["c"] == (
        "red",
        ["config mismatch: TeamSettings.MaxUsersPerTeam, TeamSettings.SiteName"],
    )
    assert states["a"] == ("green", ["ok"]) and states["b"] == ("green", ["ok"])


def test_a_node_without_digests_still_shows_its_config_hash() -> None:
    old = _node("c", config_hash="h2", props={"settings": {}})
    assert _states(_node("a"), _node("b"), old)["c"] == ("red", ["config mismatch: hash h2"])


def test_down_draining_not_ready_late_and_version() -> None:
    states = _states(
        _node("a"),
        _node("b", age=45),
        _node("c", props={"draining": True}),
        _node("d", props={"problems": ["database: connection refused"]}),
        _node("e", age=12),
        _node("f", version="0.9"),
        _node("g"),
    )
    assert states["b"] == ("red", ["down: no heartbeat for 45 s"])
    assert states["c"] == ("yellow", ["draining: finishing requests, websockets moved away"])
    assert states["d"] == ("red", ["not ready: database: connection refused"])
    assert states["e"] == ("yellow", ["heartbeat late: 12 s ago"])
    assert states["f"] == ("red", ["version mismatch: 0.9 (the others run 1.0)"])


def test_a_degraded_node_is_yellow_with_what_is_impaired() -> None:
    outage = "redis: unreachable (events wait in the outbox)"
    states = _states(_node("a"), _node("b", props={"degraded": [outage]}))
    assert states["a"] == ("green", ["ok"])
    assert states["b"] == ("yellow", [f"degraded: {outage}"])


def test_setting_digests_hide_values_and_skip_per_node_settings() -> None:
    secret = "postgres://hubbub:hunter2@db/hubbub"
    digests = _digests(MM_SQLSETTINGS_DATASOURCE=secret, MM_SERVICESETTINGS_LISTENADDRESS=":9000")
    assert "ServiceSettings.ListenAddress" not in digests
    assert not any(k.startswith("ClusterSettings.") for k in digests)
    assert all(secret not in v and "hunter2" not in v for v in digests.values())
    # A secret's digest is 32 bits: enough to tell nodes apart, too little to confirm a guess.
    assert len(digests["SqlSettings.DataSource"]) == 8
    other = _digests(MM_SQLSETTINGS_DATASOURCE=secret + "x")
    assert other["SqlSettings.DataSource"] != digests["SqlSettings.DataSource"]
    assert {k for k in digests if digests[k] != other[k]} == {"SqlSettings.DataSource"}


def test_websocket_figures_cover_the_last_window() -> None:
    clock = [0.0]
    metrics = Metrics()
    stats = WebsocketStats(metrics, lambda: 3, window=100, resolution=10, clock=lambda: clock[0])
    metrics.disconnects.labels("proxy_idle_suspected").inc(5)
    metrics.reconnects.labels("success").inc(2)
    metrics.reconnects.labels("lossless").inc(1)
    metrics.reconnects.labels("failure").inc(4)
    metrics.dropped.labels("typing").inc(7)
    clock[0] = 50
    first = stats.summary()
    assert first["connections"] == 3
    assert first["window_seconds"] == 50
    assert first["disconnects"] == {"proxy_idle_suspected": 5}
    assert (first["resumes"], first["refetches"], first["dropped_events"]) == (3, 4, 7)

    # Asked every 10 s (a heartbeat): only what happened in the last window counts.
    for t in range(60, 170, 10):
        clock[0] = t
        stats.summary()
    metrics.disconnects.labels("slow_consumer").inc()
    for t in range(170, 260, 10):
        clock[0] = t
        later = stats.summary()
    assert later["disconnects"] == {"slow_consumer": 1}
    assert later["slow_consumer_closes"] == 1
    assert (later["resumes"], later["refetches"], later["dropped_events"]) == (0, 0, 0)
    assert 100 <= later["window_seconds"] <= 110

    # Asked rarely: the figures cover a longer time, and say so.
    clock[0] = 1000
    assert stats.summary()["window_seconds"] == 750


def test_a_version_mix_within_the_window_is_yellow_on_every_node() -> None:
    new_settings = {**_digests(), "NewSettings.Added": "abc"}
    states = _states(
        _node("a", version="0.1.0"),
        _node("b", version="0.1.0"),
        # The new release has a setting more: its config hash differs, no shared setting does.
        _node("c", version="0.2.0", config_hash="h2", props={"settings": new_settings}),
    )
    mix = "version mix: 0.1.0 on a, b; 0.2.0 on c (a rolling upgrade, within the one-minor window)"
    assert states == {name: ("yellow", [mix]) for name in "abc"}


def test_a_version_outside_the_window_is_red_and_a_shared_setting_still_counts() -> None:
    odd = _digests(MM_TEAMSETTINGS_SITENAME="Other")
    states = _states(
        _node("a", version="0.2.0"),
        _node("b", version="0.2.0"),
        _node("c", version="0.4.1"),
        _node("d", version="0.3.0", config_hash="h2", props={"settings": odd}),
    )
    assert states["c"] == ("red", ["version mismatch: 0.4.1 (the others run 0.2.0)"])
    assert states["a"] == ("green", ["ok"])
    assert states["d"] == ("red", ["config mismatch: TeamSettings.SiteName"])
