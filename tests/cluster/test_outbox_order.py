"""Per-channel order through the outbox (DESIGN §4 invariant 6), on a real PostgreSQL and a real
Redis, without nodes: what reaches the event log when a channel's events are published by
writers that die between commit and append, by writers that race each other, and by the
sweeper after Redis lost its data.

The property: every channel event reaches the log once, in channel-sequence order, and none is
marked late (a late event is one that no client can get in order any more: a client that saw
its successor refetches "since" that successor and never sees it), and no writer waits for a
predecessor that is not coming.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from hubbub.cluster.eventlog import EventMeta
from hubbub.cluster.outbox import PUBLISH_DEADLINE, Outbox, OutboxRow, RedisChannelOrder
from hubbub.cluster.redis_eventlog import RedisEventLog
from hubbub.config import load_config
from hubbub.store.db import Database
from hubbub.store.tables import outbox as outbox_table
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.redis import RedisInstance, start_redis

USER = "u" * 26
_channels = itertools.count()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisInstance]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def database_url(postgres: PostgresInstance) -> str:
    return fresh_postgres_database(postgres)


@dataclass
class Rig:
    db: Database
    redis: Redis
    log: RedisEventLog
    order: RedisChannelOrder

    def outbox(self) -> Outbox:
        """One node's outbox (each keeps its own list of rows it appended); every unpublished
        row is due for its sweeper at once."""
        return Outbox(self.db, self.log, grace_seconds=0.0, order=self.order)


@pytest.fixture
async def rig(redis_server: RedisInstance, database_url: str) -> AsyncIterator[Rig]:
    settings = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": database_url,
        },
    ).settings.SqlSettings
    db = Database(settings)
    client: Redis = redis_server.client()
    await client.flushall()
    log = RedisEventLog(client, "n0", prefix="t:")
    await log.start()
    try:
        yield Rig(db, client, log, RedisChannelOrder(client, "t:"))
    finally:
        await log.stop()
        await client.aclose()
        await db.close()


async def logged(rig: Rig, channel: str) -> list[tuple[int, bool]]:
    """(channel sequence, late) of the channel's entries in the user's log, in log order."""
    read = await rig.log.read(USER, 0, 100_000)
    out = []
    for entry in read.entries:
        body = json.loads(entry.payload)
        if body["data"]["channel"] == channel:
            out.append((body["data"]["seq"], entry.meta.late))
    return out


async def commit(rig: Rig, box: Outbox, channel: str, seq: int) -> OutboxRow:
    body = json.dumps(
        {"event": "posted", "data": {"channel": channel, "seq": seq}, "broadcast": {}}
    ).encode()
    async with rig.db.write() as conn:
        return await box.add(conn, [USER], body, EventMeta("posted"), channel, seq)


async def test_a_writer_appends_the_predecessors_a_dead_node_left_in_the_outbox(rig: Rig) -> None:
    channel = f"c{next(_channels)}"
    alive, dead = rig.outbox(), rig.outbox()
    await alive.publish(await commit(rig, alive, channel, 1))
    # Events 2 and 3 committed on a node that died before appending them.
    await commit(rig, dead, channel, 2)
    await commit(rig, dead, channel, 3)
    row = await commit(rig, alive, channel, 4)
    started = time.monotonic()
    await alive.publish(row)
    took = time.monotonic() - started
    assert await logged(rig, channel) == [(1, False), (2, False), (3, False), (4, False)]
    assert alive.repaired == 2 and alive.deferred == 0
    # It did not wait for the sweeper (or for a predecessor that was not coming).
    assert took < PUBLISH_DEADLINE, took
    # The sweeper has nothing left to do for this channel: no event is appended twice.
    await alive.flush()
    await rig.outbox().sweep()
    assert [s for s, _ in await logged(rig, channel)] == [1, 2, 3, 4]


async def test_racing_writers_and_dead_nodes_keep_channel_order(rig: Rig) -> None:
    """Events committed in sequence order and published concurrently, in random order and
    after random delays, by three nodes' writers; a quarter of them never (their node died),
    left to two sweepers that run meanwhile. The log gets each once, in order, none late."""
    channel = f"c{next(_channels)}"
    rng = random.Random(7)
    boxes = [rig.outbox() for _ in range(3)]
    rows = [await commit(rig, boxes[i % 3], channel, i + 1) for i in range(120)]
    sweepers = [rig.outbox(), rig.outbox()]

    async def writer(box: Outbox, row: OutboxRow) -> None:
        await asyncio.sleep(rng.random() * 0.3)
        await box.publish(row)

    async def sweeper(box: Outbox) -> None:
        for _ in range(6):
            await asyncio.sleep(rng.random() * 0.1)
            await box.sweep()

    tasks = [writer(boxes[i % 3], r) for i, r in enumerate(rows) if rng.random() > 0.25]
    await asyncio.gather(*tasks, *(sweeper(s) for s in sweepers))
    for box in boxes:
        await box.flush()
    await sweepers[0].sweep()  # whatever is left
    assert await logged(rig, channel) == [(i + 1, False) for i in range(120)]


async def test_after_redis_lost_its_data_the_sweeper_does_not_wait_for_events_of_the_lost_log(
    rig: Rig,
) -> None:
    """The case the chaos run logged as "channel event published without its predecessor"
    after five seconds: event 1's node appended it and died before marking it published; 2 and
    3 were appended and marked; Redis restarted empty; 4 waits in the outbox. The sweeper
    appends 1 again (the new log's channel sequence is then 1), then 4 at once: 2 and 3 are in
    every client's refetch, not coming again."""
    channel = f"c{next(_channels)}"
    box = rig.outbox()
    for seq in (1, 2, 3):
        await box.publish(await commit(rig, box, channel, seq))
    await box.flush()
    first = (await logged(rig, channel))[0]
    assert first == (1, False)
    async with rig.db.write() as conn:  # 1's node died before its mark was written
        await conn.execute(
            update(outbox_table)
            .where(outbox_table.c.channel_id == channel, outbox_table.c.channel_seq == 1)
            .values(published_at=0)
        )
    await rig.redis.flushall()
    await rig.log.current_epoch()
    await commit(rig, box, channel, 4)
    started = time.monotonic()
    await box.sweep()
    took = time.monotonic() - started
    assert await logged(rig, channel) == [(1, False), (4, False)]
    assert took < 1.0, took
