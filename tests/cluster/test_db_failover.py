"""Database failover under load, both ways, without restarting a node.

Three real nodes behind nginx on a PostgreSQL primary with a streaming replica (their read and
search replica) and Redis. Websocket clients (resuming like `@mattermost/client`), writers
(retrying with the same `pending_post_id`) and readers run through nginx; meanwhile the primary
is stopped (`pg_ctl stop -m fast`: it hands all its WAL to the replica first) and the replica is
promoted (`pg_promote()`). Then:

* manual recipe: config.json on every node gets the promoted server as `DataSource` (and no
  replica), and one `POST /api/v4/config/reload` plus `POST /api/v4/database/recycle` reach
  every node through the bus; the config hashes converge in `/api/v4/cluster/status`;
* transparent recipe: `DataSource` lists both servers with `target_session_attrs=read-write`;
  nothing is done: the pools drop the dead connections and reconnect to the new primary.

Checked: every acknowledged post is on the new primary (0 lost), every committed post reached
every client exactly once and in order per channel (live or by refetch), no writer gave up.
Measured and printed: the longest write outage (the longest time without a successful commit)
and the share of reads the replicas served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import cli
from tests.support.cluster import Cluster, start_cluster, write_config
from tests.support.failover_load import (
    ReadLog,
    World,
    WriteLog,
    WsClient,
    build_world,
    caught_up,
    check,
    committed_posts,
    reader,
    writer,
)
from tests.support.replicated import ReplicatedPostgres, start_replicated
from tests.support.rest import Rest
from tests.support.wait import wait_until, wait_until_async

pytestmark = pytest.mark.postgres

CLIENTS, READERS, WRITERS, CHANNELS = 6, 4, 4, 3
POSTS_PER_WRITER, WRITE_SECONDS, FAILOVER_AT = 40, 10.0, 3.0


def sql_settings(pair: ReplicatedPostgres, recipe: str) -> dict[str, Any]:
    multi = recipe == "transparent"
    return {
        "DriverName": "postgres",
        "DataSource": pair.multi_host_url() if multi else pair.primary.url,
        "DataSourceReplicas": [pair.replica.url],
        "DataSourceSearchReplicas": [pair.replica.url],
        "ReplicaMonitorIntervalSeconds": 1,
        "QueryTimeout": 5,
    }


@pytest.fixture(params=["manual", "transparent"])
def recipe(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair() -> Iterator[ReplicatedPostgres]:
    started = start_replicated()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def db_cluster(pair: ReplicatedPostgres, recipe: str) -> Iterator[Cluster]:
    cluster = start_cluster(
        pair.primary.url,
        nodes=3,
        settings={"MM_CLUSTERSETTINGS_HEARTBEATSECONDS": "1"},
        config_json={"SqlSettings": sql_settings(pair, recipe)},
    )
    try:
        yield cluster
    finally:
        cluster.close()


def reads_by_role(cluster: Cluster) -> dict[str, float]:
    return {
        role: sum(
            n.metric("hubbub_db_queries_total", query_class="read", role=role) for n in cluster
        )
        for role in ("primary", "replica")
    }


def manual_failover(cluster: Cluster, pair: ReplicatedPostgres, admin_token: str) -> None:
    """The HA guide's recipe: promote, point DataSource at the new primary, reload, recycle."""
    pair.stop_primary("fast")
    pair.promote()
    new_sql = {**sql_settings(pair, "manual"), "DataSource": pair.replica.url}
    new_sql["DataSourceReplicas"] = []
    new_sql["DataSourceSearchReplicas"] = []
    for node in cluster:
        write_config(node.server.workdir, {"SqlSettings": new_sql})
    with httpx.Client(base_url=cluster.nginx_url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {admin_token}"}
        for path in ("/api/v4/config/reload", "/api/v4/database/recycle"):
            resp = http.post(path, headers=auth)
            assert resp.status_code == 200, (path, resp.status_code, resp.text)
            assert resp.json()["status"] == "OK"


def transparent_failover(pair: ReplicatedPostgres) -> None:
    pair.stop_primary("fast")
    pair.promote()


async def test_failover_under_load_loses_nothing(
    db_cluster: Cluster,
    pair: ReplicatedPostgres,
    recipe: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = db_cluster
    rest = Rest(cluster.nginx_url)
    try:
        world: World = build_world(rest, READERS, WRITERS, CHANNELS)
        hashes_before = {n["config_hash"] for n in _status(rest, world)}
    finally:
        rest.close()
    pair.wait_replayed()
    world.baseline.update({c: 0 for c in world.channels})

    ws_url = f"ws://127.0.0.1:{cluster.nginx_port}/api/v4/websocket"
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=40)
    async with httpx.AsyncClient(base_url=cluster.nginx_url, timeout=10, limits=limits) as http:
        clients = [
            WsClient(i, world.readers[i % READERS], world.channels, ws_url, http, world.baseline)
            for i in range(CLIENTS)
        ]
        tasks = [asyncio.create_task(c.run()) for c in clients]
        stop_reading = asyncio.Event()
        reads, writes = ReadLog(), WriteLog()
        try:
            await wait_until_async(
                lambda: all(c.connection_id for c in clients), 20, "every client's hello"
            )
            reads_at_start = reads_by_role(cluster)
            readers = [
                asyncio.create_task(reader(http, r, world.channels, stop_reading, reads))
                for r in world.readers
            ]
            started = time.monotonic()
            interval = WRITE_SECONDS / POSTS_PER_WRITER
            writers = [
                asyncio.create_task(
                    writer(http, w, n, POSTS_PER_WRITER, world.channels, interval, started, writes)
                )
                for n, w in enumerate(world.writers)
            ]
            await asyncio.sleep(FAILOVER_AT)  # let the load run before the fault (pacing)
            reads_before_failover = reads_by_role(cluster)
            failover_began = time.monotonic()
            if recipe == "manual":
                await asyncio.to_thread(manual_failover, cluster, pair, world.admin.token)
            else:
                await asyncio.to_thread(transparent_failover, pair)
            failover_took = time.monotonic() - failover_began
            await asyncio.wait_for(asyncio.gather(*writers), WRITE_SECONDS + 90)
            stop_reading.set()
            await asyncio.gather(*readers)
            reads_at_end = reads_by_role(cluster)

            committed = committed_posts(pair.replica, world)
            await wait_until_async(
                lambda: caught_up(clients, committed), 30, "every client to have every post"
            )
            await asyncio.wait_for(asyncio.gather(*(c.idle() for c in clients)), 60)
        finally:
            stop_reading.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    committed = committed_posts(pair.replica, world)
    verdict = check(clients, committed)
    on_new_primary = {post_id for posts in committed.values() for _, post_id in posts}
    acknowledged = set(writes.committed.values())
    lost_acknowledged = acknowledged - on_new_primary

    def share(a: dict[str, float], b: dict[str, float]) -> str:
        replica = b["replica"] - a["replica"]
        total = replica + b["primary"] - a["primary"]
        return f"{100 * replica / total:.0f}% of {total:.0f}" if total else "no reads"

    with capsys.disabled():
        print(
            f"\ndatabase failover ({recipe}): {len(acknowledged)} posts acknowledged, "
            f"{len(lost_acknowledged)} lost; failover steps took {failover_took:.2f}s; "
            f"longest write outage {writes.longest_outage():.2f}s; "
            f"{writes.failed_attempts()} failed attempts {dict(writes.error_bodies)}"
        )
        print(
            f"  reads: {reads.ok} ok, failed {dict(reads.failed)}; replicas served "
            f"{share(reads_at_start, reads_before_failover)} before the failover, "
            f"{share(reads_before_failover, reads_at_end)} from the failover on"
        )
        print(
            f"  clients: {sum(c.connects for c in clients)} connects, "
            f"{sum(c.refetches for c in clients)} refetches; checker: {verdict.expected} "
            f"expected, lost {len(verdict.lost)}, repeated {len(verdict.repeated)}, "
            f"reordered {len(verdict.reordered)}, refetch only {verdict.via_refetch_only}"
        )

    assert not writes.failures, writes.failures[:10]
    assert len(acknowledged) == WRITERS * POSTS_PER_WRITER
    assert not lost_acknowledged, sorted(lost_acknowledged)[:10]
    assert len(on_new_primary) == len(acknowledged)
    assert not [e for c in clients for e in c.protocol_errors]
    assert not [g for c in clients for g in c.seq_gaps]
    assert not verdict.lost, verdict.lost[:10]
    assert not verdict.repeated, verdict.repeated[:10]
    assert not verdict.reordered, verdict.reordered[:10]
    # A write that failed failed fast, with Mattermost's error body.
    assert set(writes.error_bodies) <= {"api.context.server_error.app_error"}, writes.error_bodies
    # The nodes run on the new primary, and (manual) every node took the reloaded config.
    rest = Rest(cluster.nginx_url)
    try:
        if recipe == "manual":
            wait_until(
                lambda: _converged(rest, world, hashes_before), 15, "config hashes to converge"
            )
        wait_until(
            lambda: all(
                n["database"]["primary"]["healthy"]
                and n["database"]["primary"]["address"].endswith(f":{pair.replica.port}")
                for n in _status(rest, world)
            ),
            15,
            "every node to report the promoted server as its healthy primary",
        )
        # Every node saw the primary change, in its status and its metrics.
        assert all(n["database"]["primary"]["failovers"] >= 1 for n in _status(rest, world))
        assert all(n.metric("hubbub_db_failovers_total") >= 1 for n in cluster)
    finally:
        rest.close()
    # `hubbub cluster status` (which reads the discovery rows through the node's config) shows
    # each node's database roles: the promoted server as a healthy primary.
    shown = cli.run("cluster", "status", cwd=cluster[0].server.workdir, env=cluster[0].env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    primary_lines = [line for line in shown.stdout.splitlines() if "database primary" in line]
    assert len(primary_lines) == len(cluster), shown.stdout
    assert all(f":{pair.replica.port}: ok" in line for line in primary_lines), shown.stdout


def _status(rest: Rest, world: World) -> list[dict[str, Any]]:
    return list(rest.call("GET", "/cluster/status", world.admin.token))


def _converged(rest: Rest, world: World, before: set[str]) -> bool:
    hashes = {n["config_hash"] for n in _status(rest, world)}
    return len(hashes) == 1 and not hashes & before
