"""Cluster membership, `GET /api/v4/cluster/status`, `hubbub cluster status`, and the refusal of a
file directory that the nodes do not share.

In-process tests run `Discovery` on SQLite and PostgreSQL; the rest start real `hubbub serve`
processes on one PostgreSQL (and one Redis, as a cluster has), with heartbeats shortened through
`MM_CLUSTERSETTINGS_HEARTBEATSECONDS`. Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubbub.cluster.discovery import (
    ClusterTiming,
    Discovery,
    NodeIdentity,
    NodeInfo,
    cluster_config_hash,
    cluster_view,
    format_status_table,
)
from hubbub.cluster.leader import Leader, NotLeader, run_as_leader
from hubbub.cluster.topology import SharedStorageCheck, marker_path
from hubbub.config import ConfigError, LoadedConfig, load_config
from hubbub.files import LocalFileBackend
from hubbub.store.db import Database
from hubbub.store.migrate import migrate
from tests.support.api import API, User
from tests.support.nginx import launch_nginx
from tests.support.ports import free_port, start_on_free_ports
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.redis import RedisInstance, start_redis
from tests.support.server import ServerProcess
from tests.support.wait import wait_until
from tests.support.ws import RawWS, hello_of

HEARTBEAT = 0.2
PASSWORD = "password-123"

# Pure: the status view, the compared hash, timing


def _node(node_id: str, **kw: Any) -> NodeInfo:
    values: dict[str, Any] = {
        "id": node_id,
        "cluster_name": "c",
        "hostname": "host",
        "port": 8065,
        "create_at": 1000,
        "last_ping_at": 100_000,
        "version": "0.1.0",
        "schema_version": "0002",
        "config_hash": "aaaa",
        "props": {"node_name": f"host:{node_id}", "ipaddress": "10.0.0.1"},
    }
    values.update(kw)
    return NodeInfo(**values)


def test_view_marks_the_odd_node_out_against_the_majority() -> None:
    nodes = [_node("n1"), _node("n2", config_hash="bbbb"), _node("n3", create_at=2000)]
    view = cluster_view(nodes, now=100_500, live_seconds=20, me="n2", leader_id="n3")
    by_id = {n["id"]: n for n in view}
    assert by_id["n1"]["status"] == "ok" and by_id["n1"]["reasons"] == []
    assert by_id["n3"]["status"] == "ok" and by_id["n3"]["leader"] is True
    # The answering node (n2) is the odd one: the majority wins over "this node".
    assert by_id["n2"]["status"] == "mismatch"
    assert by_id["n2"]["reasons"] == ["config_hash bbbb differs from aaaa (majority)"]
    assert set(view[0]) >= {
        "id",
        "version",
        "schema_version",
        "config_hash",
        "ipaddress",
        "hostname",
        "last_heartbeat",
        "websocket_connections",
        "node_name",
        "status",
    }
    assert view[0]["ipaddress"] == "10.0.0.1"


def test_view_breaks_a_tie_with_this_node_else_the_oldest() -> None:
    nodes = [_node("old", version="0.1.0"), _node("new", version="0.3.0", create_at=5000)]
    mine = {n["id"]: n for n in cluster_view(nodes, now=100_000, live_seconds=20, me="new")}
    assert mine["new"]["status"] == "ok"
    assert mine["old"]["reasons"] == ["version 0.1.0 differs from 0.3.0 (majority)"]
    cli = {n["id"]: n for n in cluster_view(nodes, now=100_000, live_seconds=20)}
    assert cli["old"]["status"] == "ok" and cli["new"]["status"] == "mismatch"
    assert cli["new"]["state"] == "red"


def test_view_shows_a_version_mix_in_the_window_as_mixed_on_every_node() -> None:
    nodes = [
        _node("n1"),
        _node("n2"),
        # The new release knows another migration and has other settings.
        _node("n3", version="0.2.0", schema_version="0003", config_hash="cccc"),
        _node("n4", version="0.2.0", schema_version="0003", config_hash="dddd"),
    ]
    view = {n["id"]: n for n in cluster_view(nodes, now=100_000, live_seconds=20, me="n3")}
    mix = (
        "version mix: 0.1.0 on host:n1, host:n2; 0.2.0 on host:n3, host:n4 "
        "(a rolling upgrade, within the one-minor window)"
    )
    for node_id in ("n1", "n2", "n3"):
        assert (view[node_id]["status"], view[node_id]["state"]) == ("mixed", "yellow")
        assert view[node_id]["reasons"] == [mix]
    # Within one version, the config hashes must still agree.
    assert view["n4"]["status"] == "mismatch"
    assert view["n4"]["reasons"] == ["config_hash dddd differs from cccc (majority)", mix]


def test_stale_nodes_are_listed_but_not_counted() -> None:
    nodes = [
        _node("a", config_hash="x", last_ping_at=10_000),
        _node("b", config_hash="x", last_ping_at=10_000),
        _node("c", config_hash="y"),
    ]
    view = {n["id"]: n for n in cluster_view(nodes, now=100_000, live_seconds=20)}
    assert view["a"]["status"] == "stale" and view["a"]["reasons"] == ["no heartbeat for 90s"]
    assert view["c"]["status"] == "ok"  # the only live node is its own majority
    table = format_status_table(list(view.values()), now=100_000)
    assert "stale" in table and "host:a: no heartbeat for 90s" in table


def test_compared_hash_ignores_only_node_local_settings() -> None:
    base = load_config(None, environ={}).settings
    other_port = load_config(
        None,
        environ={
            "MM_SERVICESETTINGS_LISTENADDRESS": "127.0.0.1:9999",
            "MM_METRICSSETTINGS_LISTENADDRESS": ":9998",
            "MM_CLUSTERSETTINGS_OVERRIDEHOSTNAME": "elsewhere",
        },
    ).settings
    other_site = load_config(None, environ={"MM_TEAMSETTINGS_SITENAME": "Other"}).settings
    assert cluster_config_hash(base) == cluster_config_hash(other_port)
    assert cluster_config_hash(base) != cluster_config_hash(other_site)


def test_identity_is_hostname_and_port_unless_overridden() -> None:
    plain = load_config(None, environ={"MM_SERVICESETTINGS_LISTENADDRESS": "127.0.0.1:8123"})
    ident = NodeIdentity.from_settings(plain.settings, "me:8123")
    assert ident.port == 8123 and ident.ipaddress == "127.0.0.1" and ident.hostname
    named = load_config(
        None,
        environ={
            "MM_SERVICESETTINGS_LISTENADDRESS": ":8124",
            "MM_CLUSTERSETTINGS_OVERRIDEHOSTNAME": "chat-2.internal",
        },
    )
    ident = NodeIdentity.from_settings(named.settings, "chat-2.internal")
    assert ident.hostname == "chat-2.internal" and ident.port == 8124
    assert ident.ipaddress  # the outbound interface's address for a wildcard listen


def _timing(**env: str) -> ClusterTiming:
    return ClusterTiming.from_settings(load_config(None, environ=env).settings)


def test_timing_scales_with_the_heartbeat_and_rejects_nonsense() -> None:
    assert _timing() == ClusterTiming(5.0, 20.0, 15.0, 3600.0)
    short = _timing(MM_CLUSTERSETTINGS_HEARTBEATSECONDS="0.5")
    assert (short.heartbeat, short.live, short.lease) == (0.5, 2.0, 1.5)
    explicit = _timing(MM_CLUSTERSETTINGS_LIVESECONDS="30", MM_CLUSTERSETTINGS_LEASESECONDS="9")
    assert (explicit.live, explicit.lease) == (30.0, 9.0)
    with pytest.raises(ConfigError, match=r"ClusterSettings.HeartbeatSeconds: expected a number"):
        _timing(MM_CLUSTERSETTINGS_HEARTBEATSECONDS="soon")
    with pytest.raises(ConfigError, match=r"ClusterSettings"):
        _timing(MM_CLUSTERSETTINGS_HEARTBEATSECONDS="0")
    with pytest.raises(ConfigError, match=r"LiveSeconds .1. must exceed HeartbeatSeconds"):
        _timing(MM_CLUSTERSETTINGS_LIVESECONDS="1")
    with pytest.raises(ConfigError, match=r"LeaseSeconds .2. must exceed HeartbeatSeconds"):
        _timing(MM_CLUSTERSETTINGS_LEASESECONDS="2")
    with pytest.raises(ConfigError, match=r"ExpireSeconds .10. must not be below"):
        _timing(MM_CLUSTERSETTINGS_EXPIRESECONDS="10")


# In process: Discovery on SQLite and PostgreSQL


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
async def database(node_config: LoadedConfig) -> Any:
    db = Database(node_config.settings.SqlSettings)
    await migrate(db)
    try:
        yield db
    finally:
        await db.close()


def _discovery(db: Database, port: int, clock: Clock, listeners: Any = (), **kw: Any) -> Discovery:
    settings = load_config(
        None,
        environ={
            "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{port}",
            "MM_CLUSTERSETTINGS_CLUSTERNAME": "unit",
            **kw,
        },
    ).settings
    return Discovery(
        db,
        NodeIdentity.from_settings(settings, f"test:{port}"),
        enabled=True,
        timing=ClusterTiming(heartbeat=60, live=20, lease=90, expire=3600),
        schema_version=lambda: "0002",
        listeners=listeners,
        clock=clock,
    )


async def test_nodes_see_each_other_and_leave_cleanly(database: Database) -> None:
    clock = Clock()
    a = _discovery(database, 1001, clock)
    clock.ms += 1  # b starts later: nodes are listed oldest first
    seen: list[list[str]] = []

    async def listener(live: list[NodeInfo]) -> None:
        seen.append(sorted(n.node_name for n in live))

    b = _discovery(database, 1002, clock, listeners=[listener])
    await a.start()
    await b.start()
    try:
        assert seen == [["test:1001", "test:1002"]]
        assert [n.id for n in await a.live_nodes()] == [a.node_id, b.node_id]
        view = await a.view(leader_id=b.node_id)
        assert [(n["node_name"], n["status"], n["leader"]) for n in view] == [
            ("test:1001", "ok", False),
            ("test:1002", "ok", True),
        ]
        assert view[0]["schema_version"] == "0002"

        clock.ms += 25_000  # a has not heartbeat for longer than the live window
        await b.heartbeat()
        assert seen[-1] == ["test:1002"]
        view = {n["node_name"]: n for n in await b.view(leader_id=None)}
        assert view["test:1001"]["status"] == "stale"
        await a.heartbeat()
        assert [n.node_name for n in await b.live_nodes()] == ["test:1001", "test:1002"]
    finally:
        await a.stop()
    assert [n.id for n in await b.all_nodes()] == [b.node_id]
    await b.stop()
    assert await b.all_nodes() == []


async def test_a_restart_replaces_the_row_and_a_lost_row_comes_back(database: Database) -> None:
    clock = Clock()
    first = _discovery(database, 1001, clock)
    await first.start()
    # The same node restarted (same host and port) before its old row went stale.
    second = _discovery(database, 1001, clock)
    await second.start()
    assert [n.id for n in await second.all_nodes()] == [second.node_id]
    # Its row deleted under it (say, by the leader after a long pause): the heartbeat re-registers.
    await first.stop()  # deletes only first's (already replaced) row
    async with database.write() as conn:
        from hubbub.store.tables import cluster_discovery

        await conn.execute(cluster_discovery.delete())
    await second.heartbeat()
    assert [n.id for n in await second.all_nodes()] == [second.node_id]
    await second.stop()


async def test_the_leader_deletes_expired_rows_only_with_a_current_token(
    database: Database,
) -> None:
    clock = Clock()
    gone, alive = _discovery(database, 1001, clock), _discovery(database, 1002, clock)
    await gone.start()
    clock.ms += 3_601_000
    await alive.start()
    leader = Leader(database, alive.node_id, clock=clock)
    assert await leader.try_acquire()
    token = leader.fencing_token()
    assert token is not None
    with pytest.raises(NotLeader):
        await alive.delete_expired(lambda conn: run_as_leader(conn, token + 1))
    assert len(await alive.all_nodes()) == 2
    assert await alive.delete_expired(lambda conn: run_as_leader(conn, token)) == 1
    assert [n.id for n in await alive.all_nodes()] == [alive.node_id]
    await alive.stop()


async def test_disabled_discovery_writes_nothing_and_reports_itself(database: Database) -> None:
    clock = Clock()
    node = _discovery(database, 1003, clock)
    node.enabled = False
    await node.start()
    view = await node.view(leader_id=node.node_id)
    assert [(n["node_name"], n["status"], n["leader"]) for n in view] == [("test:1003", "ok", True)]
    assert await node.all_nodes() == []
    await node.stop()


async def test_unreadable_markers_count_after_two_heartbeats(tmp_path: Path) -> None:
    now = [100.0]
    mine = LocalFileBackend(str(tmp_path / "a"))
    check = SharedStorageCheck(
        mine, "me", "host:1", enabled=True, grace_seconds=0.4, monotonic=lambda: now[0]
    )
    await check.start()
    assert await mine.exists(marker_path("me"))
    peer = _node("peer", props={"node_name": "host:2"})
    await check.observe([peer])
    now[0] += 0.3
    await check.observe([peer])
    assert check.problems() == []  # still within the grace period
    now[0] += 0.2
    await check.observe([peer])
    (problem,) = check.problems()
    assert problem.startswith(
        "FileSettings.Directory is not shared between nodes: cannot read node host:2's marker"
    )
    # The peer's marker shows up (the share was mounted): ready again.
    await mine.write(marker_path("peer"), json.dumps({"node_id": "peer"}).encode())
    await check.observe([peer])
    assert check.problems() == []
    await check.stop()
    assert not await mine.exists(marker_path("me"))


# In process: the endpoint on a single node (no ClusterSettings.Enable)


async def test_single_node_status_lists_this_node(api: API, admin: User) -> None:
    nodes = await api.call("GET", "/cluster/status", token=admin.token)
    assert len(nodes) == 1
    (node,) = nodes
    assert node["status"] == "ok" and node["leader"] is True and node["reasons"] == []
    assert node["version"] and node["schema_version"] and len(node["config_hash"]) == 16
    assert node["websocket_connections"] == 0

    user = await api.new_user(admin.token)
    await api.call("GET", "/cluster/status", token=user.token, expect=403)
    await api.call("GET", "/cluster/status", expect=401)


# Real processes on one PostgreSQL


@pytest.fixture
def redis() -> Iterator[RedisInstance]:
    instance = start_redis()
    try:
        yield instance
    finally:
        instance.stop()


class NodeSet:
    """Nodes of one cluster on a fresh PostgreSQL database; stopped by PID at the end."""

    def __init__(self, postgres: PostgresInstance, redis: RedisInstance, base: Path) -> None:
        self.db_url = fresh_postgres_database(postgres)
        self.redis = redis
        self.base = base
        self.nodes: list[ServerProcess] = []

    def env(self, files: Path, **extra: str) -> dict[str, str]:
        return {
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": self.db_url,
            "MM_CLUSTERSETTINGS_ENABLE": "true",
            "MM_CLUSTERSETTINGS_CLUSTERNAME": "test",
            "MM_CACHESETTINGS_CACHETYPE": "redis",
            "MM_CACHESETTINGS_REDISADDRESS": f"127.0.0.1:{self.redis.port}",
            "MM_FILESETTINGS_DIRECTORY": str(files),
            "MM_CLUSTERSETTINGS_HEARTBEATSECONDS": str(HEARTBEAT),
            "MM_SERVICESETTINGS_GRACEFULSHUTDOWNTIMEOUTSECONDS": "2",
            **extra,
        }

    def start(self, files: Path, **extra: str) -> ServerProcess:
        node = start_node(self.base / f"node{len(self.nodes)}", self.env(files, **extra))
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()


@pytest.fixture
def nodeset(postgres: PostgresInstance, redis: RedisInstance, tmp_path: Path) -> Iterator[NodeSet]:
    """Not `cluster`: tests/cluster/conftest.py's fixture of that name is a ready-made rig."""
    c = NodeSet(postgres, redis, tmp_path)
    try:
        yield c
    finally:
        c.stop()


def start_node(workdir: Path, env: dict[str, str]) -> ServerProcess:
    """Like `start_server`, but up means "answers HTTP": a node in a broken cluster is up and
    answers its health check with 500."""
    workdir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "HUBBUB_"))}

    def attempt() -> ServerProcess:
        port = free_port()
        log_path = workdir / f"hubbub-{port}.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hubbub.cli.main", "serve"],
                cwd=workdir,
                env={**clean, "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{port}", **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = ServerProcess(proc=proc, port=port, workdir=workdir, log_path=log_path)

        def up() -> bool:
            if proc.poll() is not None:
                raise server.exited()
            ping(server)
            return True

        try:
            wait_until(up, 30, f"hubbub serve on port {port}")
        except BaseException:
            server.stop(signal.SIGKILL)
            raise
        return server

    return start_on_free_ports(attempt, "hubbub serve")


def ping(node: ServerProcess, details: bool = True) -> tuple[int, dict[str, Any]]:
    url = node.url + "/api/v4/system/ping" + ("?get_server_status=true" if details else "")
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def admin_token(node: ServerProcess) -> str:
    with httpx.Client(base_url=node.url, timeout=10) as client:
        created = client.post(
            "/api/v4/users",
            json={"email": "admin@example.com", "username": "admin", "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        login = client.post("/api/v4/users/login", json={"login_id": "admin", "password": PASSWORD})
        assert login.status_code == 200, login.text
        return login.headers["Token"]


def status(node: ServerProcess, token: str) -> list[dict[str, Any]]:
    resp = httpx.get(
        node.url + "/api/v4/cluster/status",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json())


def cli_status(nodeset: NodeSet, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "HUBBUB_"))}
    return subprocess.run(
        [sys.executable, "-m", "hubbub.cli.main", "cluster", "status", *args],
        cwd=workdir,
        env={**clean, **nodeset.env(workdir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nodes_report_the_cluster_and_its_mismatches(nodeset: NodeSet, tmp_path: Path) -> None:
    shared = tmp_path / "shared-files"
    one = nodeset.start(shared)
    two = nodeset.start(shared)
    token = admin_token(one)

    def both_ok() -> bool:
        nodes = status(two, token)
        return len(nodes) == 2 and all(n["status"] == "ok" for n in nodes)

    wait_until(both_ok, 15, "both nodes live and matching")
    nodes = {n["port"]: n for n in status(one, token)}
    assert set(nodes) == {one.port, two.port}
    assert sum(n["leader"] for n in nodes.values()) == 1
    assert {n["ipaddress"] for n in nodes.values()} == {"127.0.0.1"}
    assert len({n["config_hash"] for n in nodes.values()}) == 1  # ports differ, hash does not
    assert len({n["id"] for n in nodes.values()}) == 2

    # Websocket connections are counted per node.
    ws = RawWS.connect(two.port, token=token)
    try:
        hello_of(ws)
        wait_until(
            lambda: (
                {n["port"]: n["websocket_connections"] for n in status(one, token)}
                == {one.port: 0, two.port: 1}
            ),
            15,
            "node two's websocket in the status",
        )
    finally:
        ws.close()

    result = cli_status(nodeset, tmp_path / "cli")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f":{one.port}" in result.stdout and f":{two.port}" in result.stdout

    # A third node with a different configuration is reported, by the API and by the CLI.
    odd = nodeset.start(shared, MM_TEAMSETTINGS_SITENAME="Somewhere else")

    def odd_flagged() -> bool:
        nodes = {n["port"]: n for n in status(one, token)}
        return len(nodes) == 3 and nodes[odd.port]["status"] == "mismatch"

    wait_until(odd_flagged, 15, "the third node flagged as a mismatch")
    flagged = {n["port"]: n for n in status(odd, token)}[odd.port]
    assert flagged["reasons"] == [
        f"config_hash {flagged['config_hash']} differs from "
        f"{nodes[one.port]['config_hash']} (majority)"
    ]
    result = cli_status(nodeset, tmp_path / "cli")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mismatch" in result.stdout and "config_hash" in result.stdout
    as_json = json.loads(cli_status(nodeset, tmp_path / "cli", "--json").stdout)
    assert sorted(n["status"] for n in as_json) == ["mismatch", "ok", "ok"]

    # A clean stop removes the node's row; a killed node goes stale.
    assert odd.stop() == 0
    wait_until(lambda: len(status(one, token)) == 2, 15, "the stopped node to leave")
    two.stop(signal.SIGKILL)
    wait_until(
        lambda: (
            {n["port"]: n["status"] for n in status(one, token)}
            == {one.port: "ok", two.port: "stale"}
        ),
        15,
        "the killed node to go stale",
    )


def test_shared_file_directory_is_ready(nodeset: NodeSet, tmp_path: Path) -> None:
    shared = tmp_path / "shared-files"
    one = nodeset.start(shared)
    two = nodeset.start(shared)
    token = admin_token(one)
    wait_until(lambda: len(status(one, token)) == 2, 15, "two live nodes")
    # Let both check each other's markers past the grace period (two heartbeats) and then some.
    beats = {n["port"]: n["last_heartbeat"] for n in status(one, token)}
    wait_until(
        lambda: all(
            n["last_heartbeat"] > beats[n["port"]] + 4 * HEARTBEAT * 1000
            for n in status(one, token)
        ),
        15,
        "several heartbeats",
    )
    for node in (one, two):
        code, body = ping(node)
        assert code == 200, body
        assert body["status"] == "OK" and "problems" not in body
        assert ping(node, details=False)[0] == 200
    assert "not shared" not in one.log() + two.log()


def test_unshared_file_directories_make_both_nodes_not_ready(
    nodeset: NodeSet, tmp_path: Path
) -> None:
    one = nodeset.start(tmp_path / "files-one")
    two = nodeset.start(tmp_path / "files-two")
    nodes = {one.port: one, two.port: two}

    def not_ready(node: ServerProcess) -> bool:
        code, body = ping(node)
        return code == 500 and any("not shared" in p for p in body.get("problems", []))

    wait_until(lambda: all(not_ready(n) for n in nodes.values()), 15, "both nodes not ready")
    for port, node in nodes.items():
        other = next(p for p in nodes if p != port)
        code, body = ping(node)
        assert code == 500
        assert body["status"] == "UNHEALTHY"
        (problem,) = [p for p in body["problems"] if "not shared" in p]
        assert f"cannot read node {node_hostname()}:{other}'s marker" in problem
        assert ping(node, details=False)[0] == 500
        errors = [
            line
            for line in node.log().splitlines()
            if '"level":"error"' in line and "FileSettings.Directory is not shared" in line
        ]
        assert len(errors) == 1, node.log()[-3000:]
        assert f"node {node_hostname()}:{other}'s marker" in errors[0]


def node_hostname() -> str:
    import socket

    return socket.gethostname()


# The generated nginx config in front of real nodes


def test_generated_nginx_config_fronts_the_nodes(nodeset: NodeSet, tmp_path: Path) -> None:
    shared = tmp_path / "shared-files"
    one = nodeset.start(shared)
    two = nodeset.start(shared)
    token = admin_token(one)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "HUBBUB_"))}

    def generated_config(base: Path, port: int) -> str:
        generated = subprocess.run(
            [
                sys.executable,
                "-m",
                "hubbub.cli.main",
                "proxy-config",
                "nginx",
                "--upstream",
                f"127.0.0.1:{one.port}",
                "--upstream",
                f"127.0.0.1:{two.port}",
                "--listen",
                f"127.0.0.1:{port}",
                "--prefix-dir",
                str(base),
            ],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert generated.returncode == 0, generated.stderr
        return generated.stdout

    # A fresh port per attempt: another process may take the picked one before nginx binds it.
    proxy = start_on_free_ports(
        lambda: launch_nginx(generated_config, "hubbub-nginx-", "the generated config"), "nginx"
    )
    port = proxy.port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v4/system/ping", timeout=5) as r:
            assert r.status == 200

        # Websockets upgrade through the regex location and spread over both nodes.
        sockets = [RawWS.connect(port, token=token) for _ in range(2)]
        try:
            hosts = {hello_of(ws)["data"]["server_hostname"] for ws in sockets}
            assert len(hosts) == 2, hosts
            wait_until(
                lambda: sum(n["websocket_connections"] for n in status(one, token)) == 2,
                15,
                "both proxied websockets counted",
            )
        finally:
            for ws in sockets:
                ws.close()

        # Node one drains and exits: new websockets through nginx all land on node two.
        assert one.stop() == 0
        for _ in range(4):
            ws = RawWS.connect(port, token=token)
            try:
                assert hello_of(ws)["data"]["server_hostname"] == f"{node_hostname()}:{two.port}"
            finally:
                ws.close()
    finally:
        proxy.stop()


# deploy/ and `make cluster`

REPO = Path(__file__).resolve().parents[2]


def test_example_cluster_config_is_complete_and_clustered() -> None:
    config = load_config(REPO / "deploy" / "config.cluster.json", environ={})
    assert config.ignored == []
    s = config.settings
    assert s.ClusterSettings.Enable and s.ClusterSettings.ClusterName
    assert s.SqlSettings.DriverName == "postgres" and s.CacheSettings.CacheType == "redis"


def test_systemd_unit_gives_the_drain_time_to_finish() -> None:
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "deploy" / "hubbub.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("hubbub serve")
    assert service["KillSignal"] == "SIGTERM"
    config = load_config(REPO / "deploy" / "config.cluster.json", environ={})
    graceful = config.settings.ServiceSettings.GracefulShutdownTimeoutSeconds
    # The drain waits up to 2 s for the load balancer, then finishes requests within the timeout.
    assert int(service["TimeoutStopSec"]) > graceful + 2
    assert config.settings.FileSettings.Directory.rstrip("/") in service["ReadWritePaths"]


def test_demo_cluster_comes_up_and_goes_away(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "HUBBUB_"))}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "demo-cluster"),
            "--smoke",
            "--heartbeat",
            "0.5",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(free_port()),
        ],
        env=clean,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke test passed" in result.stdout
    assert not (tmp_path / "demo").exists()  # removed, with everything it started stopped
    assert "did not stop" not in result.stdout
