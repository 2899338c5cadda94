"""One contract for every ConnectionRegistry backend (memory and Redis), then Redis' cluster
behaviour: presence across nodes, a dead node's entries running out, take-over on resume."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis

from hubbub.cluster.connections import (
    Checkpoint,
    ConnectionRecord,
    ConnectionRegistry,
    MemoryConnectionRegistry,
)
from hubbub.cluster.redis_connections import RedisConnectionRegistry
from tests.support.redis import RedisInstance, start_redis
from tests.support.sentinel import SentinelSet
from tests.support.wait import wait_until_async

Factory = Callable[..., Awaitable[ConnectionRegistry]]

_prefixes = itertools.count()
HEARTBEAT = 0.2  # live entries then last 0.6 s without a refresh


class RedisNodes:
    """RedisConnectionRegistry instances ("nodes") on one Redis; each has its own client."""

    def __init__(self, server: RedisInstance | SentinelSet) -> None:
        self.server = server
        self.clients: list[Redis] = []
        self.registries: list[RedisConnectionRegistry] = []

    async def node(self, prefix: str, **kw: float) -> RedisConnectionRegistry:
        client = self.server.client()
        self.clients.append(client)
        kw.setdefault("heartbeat_seconds", HEARTBEAT)
        registry = RedisConnectionRegistry(
            client,
            f"node{len(self.registries)}",
            prefix=prefix,
            **kw,
        )
        self.registries.append(registry)
        await registry.start()
        return registry

    async def close(self) -> None:
        for registry in self.registries:
            await registry.stop()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
def redis_server() -> Iterator[RedisInstance]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nodes(redis_server: RedisInstance) -> AsyncIterator[RedisNodes]:
    group = RedisNodes(redis_server)
    try:
        yield group
    finally:
        await group.close()


@pytest.fixture(params=["memory", "redis", "sentinel"])
async def make_registry(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    if request.param == "memory":

        async def memory_factory(**kw: float) -> ConnectionRegistry:
            return MemoryConnectionRegistry(**kw)

        yield memory_factory
        return
    server = "redis_server" if request.param == "redis" else "sentinel_set"
    group = RedisNodes(request.getfixturevalue(server))

    async def redis_factory(**kw: float) -> ConnectionRegistry:
        return await group.node(f"r{next(_prefixes)}:", **kw)

    try:
        yield redis_factory
    finally:
        await group.close()


def record(cid: str, user: str = "u1", *cps: Checkpoint) -> ConnectionRecord:
    rec = ConnectionRecord(cid, user, "epoch1")
    rec.checkpoints.extend(cps)
    return rec


async def test_open_and_get_round_trip(make_registry: Factory) -> None:
    registry = await make_registry()
    rec = record("c1", "u1", Checkpoint(0, 5))
    await registry.open(rec)
    assert rec.live
    got = await registry.get("c1")
    assert got is not None
    assert (got.connection_id, got.user_id, got.epoch, got.live) == ("c1", "u1", "epoch1", True)
    assert list(got.checkpoints) == [Checkpoint(0, 5)]
    assert got.updated > 1_600_000_000


async def test_checkpoints_keep_the_newest_64(make_registry: Factory) -> None:
    registry = await make_registry()
    await registry.open(record("c1"))
    for i in range(70):
        await registry.checkpoint("c1", Checkpoint(i, 100 + i))
    got = await registry.get("c1")
    assert got is not None
    assert [cp.seq for cp in got.checkpoints] == list(range(6, 70))
    assert got.best_checkpoint(30) == Checkpoint(30, 130)
    assert got.best_checkpoint(3) is None


async def test_unknown_connections(make_registry: Factory) -> None:
    registry = await make_registry()
    await registry.checkpoint("nope", Checkpoint(1, 1))
    await registry.detach("nope")
    await registry.forget("nope")
    assert await registry.get("nope") is None
    assert await registry.live_connections("nobody") == 0
    assert await registry.connected_users() == set()


async def test_detach_keeps_the_record_for_resume(make_registry: Factory) -> None:
    registry = await make_registry()
    await registry.open(record("c1", "u1", Checkpoint(0, 3)))
    await registry.open(record("c2", "u1"))
    await registry.open(record("c3", "u2"))
    assert await registry.live_connections("u1") == 2
    assert await registry.connected_users() == {"u1", "u2"}

    await registry.detach("c1")
    got = await registry.get("c1")
    assert got is not None and not got.live and list(got.checkpoints) == [Checkpoint(0, 3)]
    assert await registry.live_connections("u1") == 1
    await registry.detach("c2")
    assert await registry.live_connections("u1") == 0
    assert await registry.connected_users() == {"u2"}


async def test_reopening_a_detached_record_resumes_it(make_registry: Factory) -> None:
    registry = await make_registry()
    await registry.open(record("c1", "u1", Checkpoint(0, 3)))
    await registry.checkpoint("c1", Checkpoint(4, 9))
    await registry.detach("c1")
    got = await registry.get("c1")
    assert got is not None
    await registry.open(got)
    again = await registry.get("c1")
    assert again is not None and again.live
    assert list(again.checkpoints) == [Checkpoint(0, 3), Checkpoint(4, 9)]
    assert await registry.live_connections("u1") == 1


async def test_forget_removes_record_and_presence(make_registry: Factory) -> None:
    registry = await make_registry()
    await registry.open(record("c1"))
    await registry.forget("c1")
    assert await registry.get("c1") is None
    assert await registry.live_connections("u1") == 0
    assert await registry.connected_users() == set()


async def test_detached_record_expires_after_retention_a_live_one_stays(
    make_registry: Factory,
) -> None:
    registry = await make_registry(retention_seconds=0.2)
    await registry.open(record("c1"))
    await registry.open(record("c2"))
    await registry.detach("c1")

    async def expired() -> bool:
        return await registry.get("c1") is None

    await wait_until_async(expired, what="the detached record expired")
    live = await registry.get("c2")
    assert live is not None and live.live
    assert await registry.live_connections("u1") == 1


# Redis only: several nodes on one Redis.


async def test_presence_is_exact_across_nodes(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    await a.open(record("c1", "u1"))
    await b.open(record("c2", "u1"))
    await b.open(record("c3", "u2"))
    for node in (a, b):
        assert await node.live_connections("u1") == 2
        assert await node.connected_users() == {"u1", "u2"}
    await b.detach("c2")
    assert await a.live_connections("u1") == 1
    await b.detach("c3")
    assert await a.connected_users() == {"u1"}


async def test_heartbeat_keeps_live_connections_counted(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    silent = await nodes.node("p:")
    await silent.stop()  # opens entries but never refreshes them
    await a.open(record("c1", "u1"))
    await silent.open(record("c2", "u2"))

    async def silent_expired() -> bool:
        return await a.live_connections("u2") == 0

    # By the time an unrefreshed entry has run out, a refreshed one would have too.
    await wait_until_async(silent_expired, what="the unrefreshed entry expired")
    assert await a.live_connections("u1") == 1
    assert await a.connected_users() == {"u1"}


async def test_a_dead_nodes_connections_expire_but_stay_resumable(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    await a.open(record("c1", "u1", Checkpoint(0, 7)))
    assert await b.live_connections("u1") == 1
    await a.stop()  # the node dies: no detach, no more heartbeats

    async def gone() -> bool:
        return await b.live_connections("u1") == 0 and await b.connected_users() == set()

    await wait_until_async(gone, what="the dead node's entries expired")
    rec = await b.get("c1")
    assert rec is not None and not rec.live and list(rec.checkpoints) == [Checkpoint(0, 7)]
    await b.open(rec)
    assert await b.live_connections("u1") == 1


async def test_the_old_node_cannot_detach_a_resumed_connection(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    await a.open(record("c1", "u1"))
    rec = await b.get("c1")
    assert rec is not None
    await b.open(rec)  # the client resumed on node b
    await a.refresh()
    assert a.local_count() == 0 and b.local_count() == 1
    await a.detach("c1")  # a's socket finally noticed it was closed
    got = await b.get("c1")
    assert got is not None and got.live
    assert await a.live_connections("u1") == 1


async def test_presence_survives_a_redis_restart(
    nodes: RedisNodes, redis_server: RedisInstance
) -> None:
    a = await nodes.node("p:")
    await a.open(record("c1", "u1"))
    redis_server.restart()

    async def present_again() -> bool:
        return await a.live_connections("u1") == 1

    await wait_until_async(present_again, what="the heartbeat restored presence")
    assert await a.connected_users() == {"u1"}
    assert await a.get("c1") is None  # the resume record itself was lost with the data
