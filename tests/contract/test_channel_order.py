"""The per-channel order the outbox relies on (`ChannelOrder`), with the event log that advances
it: in-process (no ordering needed on one node), plain Redis and Redis under Sentinel."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from hubbub.cluster.eventlog import EventMeta
from hubbub.cluster.outbox import RedisChannelOrder
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
        yield Pair(log, RedisChannelOrder(client, prefix, max_wait_seconds=0.3))
    finally:
        await log.stop()
        await client.aclose()


async def test_the_first_event_of_an_unknown_channel_goes_ahead(pair: Pair) -> None:
    assert await pair.order.wait_turn("ch", 7, None) is True


async def test_an_event_waits_for_its_predecessor_to_be_appended(pair: Pair) -> None:
    await pair.log.append(["u"], b"1", META, event_id="e1", channel=("ch", 1))
    assert await pair.order.wait_turn("ch", 2, None) is True
    started = time.monotonic()
    # 3 is missing: 4 waits, and with a deadline of the caller's, gives up saying so.
    assert await pair.order.wait_turn("ch", 4, None, max_wait=0.1) is False
    assert time.monotonic() - started >= 0.1
    # Without one, it goes ahead after the order's own bound (counted as a timeout).
    assert await pair.order.wait_turn("ch", 4, None) is False
    assert pair.order.timeouts == 1


async def test_an_unknown_channel_with_an_older_pending_row_waits(pair: Pair) -> None:
    asked = 0

    async def older_pending() -> bool:
        nonlocal asked
        asked += 1
        return True

    assert await pair.order.wait_turn("fresh", 5, older_pending, max_wait=0.2) is False
    assert asked >= 1
