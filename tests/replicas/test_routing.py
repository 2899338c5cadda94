"""Which role serves each query class, on a real primary and streaming replica.

The counts come from the node's own `DatabaseMetrics` (the same numbers as
`hubbub_db_queries_total{query_class, role}`): every connection handed out is counted under the
role that served it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hubbub.app import Hubbub
from hubbub.config import load_config
from tests.support.api import API, User
from tests.support.replicated import ReplicatedPostgres
from tests.support.wait import wait_until_async

pytestmark = pytest.mark.postgres


@pytest.fixture
async def node(replica_env: dict[str, str]) -> AsyncIterator[Hubbub]:
    hub = Hubbub(load_config(None, environ=replica_env))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
async def api(node: Hubbub) -> AsyncIterator[API]:
    transport = httpx.ASGITransport(app=node.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubbub.test") as client:
        yield API(client)


def counts(node: Hubbub) -> dict[tuple[str, str], int]:
    return dict(node.db.metrics.counts)


def delta(before: dict[tuple[str, str], int], after: dict[tuple[str, str], int]) -> dict:
    keys = set(before) | set(after)
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)
    }


async def _world(api: API) -> tuple[User, User, dict, dict]:
    admin = await api.new_user(prefix="admin")
    reader = await api.new_user(admin.token, prefix="reader")
    team = await api.new_team(admin.token)
    await api.add_to_team(admin.token, team["id"], reader.id)
    channel = await api.new_channel(admin.token, team["id"])
    await api.add_to_channel(admin.token, channel["id"], reader.id)
    return admin, reader, team, channel


async def test_each_query_class_goes_to_its_role(
    node: Hubbub, api: API, pair: ReplicatedPostgres
) -> None:
    admin, reader, team, channel = await _world(api)
    await api.call(
        "POST", "/posts", admin.token, {"channel_id": channel["id"], "message": "findme here"}, 201
    )
    pair.wait_replayed()

    before = counts(node)
    posts = await api.call("GET", f"/channels/{channel['id']}/posts", reader.token)
    assert any(p["message"] == "findme here" for p in posts["posts"].values())
    await api.call("GET", f"/channels/{channel['id']}", reader.token)
    read = delta(before, counts(node))
    assert read.get(("read", "replica"), 0) > 0, read
    assert read.get(("read", "primary"), 0) == 0, read
    assert not any(k[0] == "write" for k in read), read

    before = counts(node)
    found = await api.call(
        "POST", f"/teams/{team['id']}/posts/search", reader.token, {"terms": "findme"}
    )
    assert len(found["order"]) == 1
    searched = delta(before, counts(node))
    assert searched.get(("search", "search_replica"), 0) > 0, searched
    assert searched.get(("search", "primary"), 0) == 0, searched

    before = counts(node)
    await api.call(
        "POST", "/posts", reader.token, {"channel_id": channel["id"], "message": "a write"}, 201
    )
    wrote = delta(before, counts(node))
    assert wrote.get(("write", "primary"), 0) > 0, wrote
    assert not any(k[0] == "write" and k[1] != "primary" for k in wrote), wrote

    # The same numbers are exported for Prometheus.
    value = node.metrics.registry.get_sample_value(
        "hubbub_db_queries_total", {"query_class": "read", "role": "replica"}
    )
    assert value is not None and value > 0


async def test_replica_down_reads_go_to_primary_and_it_comes_back(
    node: Hubbub, api: API, pair: ReplicatedPostgres
) -> None:
    _admin, reader, team, channel = await _world(api)
    pair.wait_replayed()
    pair.stop_replica()

    # The first read may be the one that finds it gone; none fails, all land on the primary.
    before = counts(node)
    for _ in range(5):
        await api.call("GET", f"/channels/{channel['id']}/posts", reader.token)
        await api.call(
            "POST", f"/teams/{team['id']}/posts/search", reader.token, {"terms": "nothing"}
        )
    served = delta(before, counts(node))
    assert served.get(("read", "replica"), 0) == 0, served
    assert served.get(("search", "search_replica"), 0) == 0, served
    assert served.get(("read", "primary"), 0) >= 5, served
    assert served.get(("search", "primary"), 0) >= 5, served
    status = node.db.status()
    assert not status["replicas"][0]["healthy"] and not status["search_replicas"][0]["healthy"]

    pair.start_replica()
    await wait_until_async(
        lambda: node.db.status()["replicas"][0]["healthy"],
        15,
        "the monitor to put the restarted replica back in rotation",
    )
    pair.wait_replayed()
    before = counts(node)
    await api.call("GET", f"/channels/{channel['id']}/posts", reader.token)
    back = delta(before, counts(node))
    assert back.get(("read", "replica"), 0) > 0, back


async def test_a_stalled_replica_leaves_rotation_by_lag(
    replica_env: dict[str, str], pair: ReplicatedPostgres
) -> None:
    env = {**replica_env, "MM_SQLSETTINGS_REPLICAMAXLAGSECONDS": "1"}
    node = Hubbub(load_config(None, environ=env))
    await node.start()
    try:
        pair.wait_replayed()
        pair.pause_replay()
        pair.primary.psql("CREATE TABLE lag_marker (x int); INSERT INTO lag_marker VALUES (1)")
        await wait_until_async(
            lambda: node.db.status()["replicas"][0]["lagging"],
            20,
            "the paused replica to be taken out for lag",
        )
        status = node.db.status()["replicas"][0]
        assert status["lag_bytes"] > 0 and not status["healthy"], status
        # The lag per replica, in bytes and seconds, is exported for Prometheus (after the
        # probe round that found it, hence the wait).
        registry = node.metrics.registry

        def exported() -> bool:
            lag = [
                registry.get_sample_value(name, {"node": status["address"]})
                for name in ("mattermost_db_replica_lag_abs", "mattermost_db_replica_lag_time")
            ]
            in_rotation = registry.get_sample_value(
                "hubbub_db_replicas_in_rotation", {"role": "replica"}
            )
            return all(v is not None and v > 0 for v in lag) and in_rotation == 0

        await wait_until_async(exported, 10, "the lag gauges to show the paused replica")
        pair.resume_replay()
        await wait_until_async(
            lambda: node.db.status()["replicas"][0]["healthy"],
            20,
            "the replica to return once it has caught up",
        )
    finally:
        await node.stop()
