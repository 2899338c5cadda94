"""The per-channel order the outbox relies on (`ChannelOrder`), with the event log that advances
it: in-process (no ordering needed on one node), plain Redis and Redis under Sentinel."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from hubbub.cluster.eventlog import EventMeta
from hubbub.cluster.outbox import READY, RedisChannelOrder, Turn
from hubbub.cluster.redis_eventlog import RedisEventLog
from tests.support.redis import RedisInstance, start_redis
from tests.support.sentinel import SentinelSet

_prefixes = itertools.count()
META = EventMeta("posted")


@dataclass
class Pair:
    log: RedisEventLog
    order: RedisChannelOrder


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisInstance]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["redis", "sentinel"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    source: RedisInstance | SentinelSet = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "sentinel_set"
    )
    client: Redis = source.client()
    prefix = f"o{next(_prefixes)}:"
    log = RedisEventLog(client, "n0", prefix=prefix)
    await log.start()
    try:
        yield Pair(log, RedisChannelOrder(client, prefix, grace_seconds=0.3))
    finally:
        await log.stop()
        await client.aclose()


async def test_an_unknown_channel_has_nothing_to_wait_for(pair: Pair) -> None:
    # The first event of a channel goes ahead; a later one of a channel the log knows nothing
    # of (not written for a day, or Redis lost its data) at once says so: the caller looks for
    # older events in the outbox.
    assert await pair.order.wait_turn("ch", 1) == READY
    started = time.monotonic()
    assert await pair.order.wait_turn("ch", 7) == Turn(False, None)
    assert time.monotonic() - started < 0.2


async def test_an_event_waits_a_grace_for_its_predecessor_then_says_how_far_the_log_got(
    pair: Pair,
) -> None:
    await pair.log.append(["u"], b"1", META, event_id="e1", channel=("ch", 1))
    assert await pair.order.wait_turn("ch", 2) == READY
    started = time.monotonic()
    # 2 and 3 are missing: 4 waits the grace (0.3 s here, or the caller's bound).
    assert await pair.order.wait_turn("ch", 4) == Turn(False, 1)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert await pair.order.wait_turn("ch", 4, max_wait=0.0) == Turn(False, 1)
    assert time.monotonic() - started < 0.2
    assert pair.order.gaps == 2


async def test_a_predecessor_appended_during_the_wait_ends_it(pair: Pair) -> None:
    await pair.log.append(["u"], b"1", META, event_id="f1", channel=("c2", 1))
    waiting = asyncio.create_task(pair.order.wait_turn("c2", 3, max_wait=5.0))
    await pair.log.append(["u"], b"2", META, event_id="f2", channel=("c2", 2))
    started = time.monotonic()
    assert await waiting == READY
    assert time.monotonic() - started < 1.0
