"""The cluster bus contract, over memory and Redis: typed messages reach every subscriber of
their type (the sender's too), and a message a node does not understand is dropped, not raised."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from hubbub.cli.operations import cmd_config_reload
from hubbub.cluster.backends import build_backends
from hubbub.cluster.bus import BusMessage, ClusterBus, MemoryBus, RedisBus, decode_message
from hubbub.cluster.redis_eventlog import redis_client
from hubbub.config import load_config
from hubbub.config.live import ConfigReload
from hubbub.store.db import Database
from tests.support.redis import RedisInstance, start_redis
from tests.support.sentinel import SentinelSet
from tests.support.wait import wait_until_async


@dataclass(frozen=True)
class Ping(BusMessage, kind="test_ping"):
    text: str
    ids: list[str]


@dataclass(frozen=True)
class Other(BusMessage, kind="test_other"):
    n: int


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisInstance]:
    instance = start_redis()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(params=["memory", "redis", "sentinel"])
async def buses(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[ClusterBus, ClusterBus]]:
    """Two nodes' buses on one medium (memory: one bus is both)."""
    if request.param == "memory":
        bus = MemoryBus("n1")
        yield bus, bus
        return
    if request.param == "redis":
        server: RedisInstance = request.getfixturevalue("redis_server")
        clients = [redis_client(server.url) for _ in range(2)]
    else:
        sentinels: SentinelSet = request.getfixturevalue("sentinel_set")
        clients = [sentinels.client() for _ in range(2)]
    pair = (RedisBus(clients[0], "t:bus", "n1"), RedisBus(clients[1], "t:bus", "n2"))
    for b in pair:
        await b.start()
        await wait_until_async(b.connected.is_set, 5, "the bus subscribed")
    try:
        yield pair
    finally:
        for b in pair:
            await b.stop()
        for c in clients:
            await c.aclose()


async def test_typed_messages_reach_every_subscriber_of_their_type(
    buses: tuple[ClusterBus, ClusterBus],
) -> None:
    sender, receiver = buses
    got_there: list[Ping] = []
    got_here: list[Ping] = []
    others: list[Other] = []

    async def there(m: Ping) -> None:
        got_there.append(m)

    async def here(m: Ping) -> None:
        got_here.append(m)

    async def other(m: Other) -> None:
        others.append(m)

    receiver.subscribe(Ping, there)
    if sender is not receiver:
        sender.subscribe(Ping, here)
    receiver.subscribe(Other, other)
    await sender.publish(Ping("hi", ["a", "b"]))
    await wait_until_async(
        lambda: got_there and (sender is receiver or got_here), 5, "the message on both nodes"
    )
    assert got_there == [Ping("hi", ["a", "b"])]
    assert isinstance(got_there[0], Ping)
    assert others == []


async def test_a_failing_handler_does_not_stop_the_others(
    buses: tuple[ClusterBus, ClusterBus],
) -> None:
    sender, receiver = buses
    got: list[Other] = []

    async def broken(m: Other) -> None:
        raise RuntimeError("handler bug")

    async def fine(m: Other) -> None:
        got.append(m)

    receiver.subscribe(Other, broken)
    receiver.subscribe(Other, fine)
    await sender.publish(Other(7))
    await wait_until_async(lambda: got, 5, "the message past the failing handler")
    assert got == [Other(7)]


def test_unknown_kinds_and_malformed_messages_are_dropped() -> None:
    assert decode_message(Ping("x", []).encode("n1")) == Ping("x", [])
    assert decode_message(orjson.dumps({"type": "from_a_newer_node", "x": 1})) is None
    assert decode_message(orjson.dumps({"type": "test_other", "unexpected": 1})) is None
    assert decode_message(b"not json") is None
    assert decode_message(orjson.dumps({"no": "type"})) is None


def test_a_kind_cannot_be_declared_twice() -> None:
    with pytest.raises(TypeError, match="already"):

        @dataclass(frozen=True)
        class Clash(BusMessage, kind="test_ping"):
            text: str


async def test_the_cli_publishes_where_the_nodes_listen_under_sentinel(
    sentinel_set: SentinelSet, tmp_path: Path
) -> None:
    """`hubbub config reload` without --url puts its message on the cluster bus through the
    Redis the nodes use: with only sentinels configured (no RedisAddress), the sentinels'
    master, and the channel the nodes' bus listens on."""
    config = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "h.db"),
            "MM_CACHESETTINGS_CACHETYPE": "redis",
            "MM_CACHESETTINGS_REDISSENTINELS": sentinel_set.spec,
            "MM_CACHESETTINGS_REDISMASTERNAME": sentinel_set.master_name,
            "MM_CLUSTERSETTINGS_CLUSTERNAME": "cli-bus",
        },
    )
    assert config.settings.CacheSettings.RedisAddress == ""
    backends = build_backends(config.settings, Database(config.settings.SqlSettings), "n1")
    heard: list[ConfigReload] = []

    async def hear(message: ConfigReload) -> None:
        heard.append(message)

    bus = backends.bus
    assert isinstance(bus, RedisBus)
    bus.subscribe(ConfigReload, hear)
    await bus.start()
    try:
        await wait_until_async(bus.connected.is_set, 5, "the bus subscribed")
        args = argparse.Namespace(url=None, token=None)
        assert await asyncio.to_thread(cmd_config_reload, args, config) == 0
        await wait_until_async(lambda: heard, 5, "the CLI's reload on the node's bus")
        assert heard == [ConfigReload("cli")]
    finally:
        await bus.stop()
        await backends.redis.aclose()
