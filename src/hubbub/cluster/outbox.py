"""The event outbox: delivery of a committed change survives the death of the node that made it.

An event is written to the `outbox` table in the same transaction as its change. Right after the
commit the writing node appends it to the event log (idempotent by event id) and, in a batch a
moment later, marks it published. If the node dies in between, any node's sweeper finds the row
still unpublished after a grace period and appends it again; the event log ignores an id it has
already seen, so a republish never duplicates (DESIGN §4 invariant 1).

Per-channel order (invariant 6): an event that carries a channel sequence (posts, edits,
deletes, reactions: `channels.event_seq`, taken in the committing transaction, so gap-free in
commit order) is appended only after the channel's previous sequence number has been appended,
by whichever node. `ChannelOrder` keeps, per channel, the newest sequence appended; a publisher
whose predecessor is still in flight waits for it (normally a millisecond or two). A writer's
request waits at most `PUBLISH_WAIT`: if the predecessor's node died between commit and publish,
or Redis restarted, the row stays in the outbox and the sweeper appends both in order a few
seconds later (the writer never stalls). The sweeper's own wait is bounded too (5 s); an event
appended after a later one of its channel anyway is marked late by the log, and no client ever
gets it after its successor: a connection that would gets a fresh hello instead (refetch). As
each node delivers appends in the log's global order, live delivery follows commit order.

Each row records its transaction's PostgreSQL id (`meta.xid`), so that a connection whose
hello came after the commit can skip it when the sweeper republishes it (after Redis lost its
data, the log's idempotence markers are gone): see `hubbub.realtime.commitclock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.eventlog import EventLog, EventMeta
from hubbub.cluster.metrics import ClusterMetrics
from hubbub.ids import new_id, now_ms
from hubbub.lifecycle import Component
from hubbub.store.db import Database
from hubbub.store.tables import outbox
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    recipients: list[str]
    body: bytes
    meta: EventMeta
    channel_id: str = ""
    channel_seq: int = 0


OlderPending = Callable[[], Awaitable[bool]]

# How long a writer's request waits for the channel's previous event to be appended before it
# leaves its own to the sweeper (a few ms normally; longer only when a node died or Redis
# restarted, and then the writer must not stall).
PUBLISH_WAIT = 0.25
# How long a writer's request may spend appending its event at all: while Redis fails over (the
# sentinels need a couple of seconds to agree), commands retry and would hold the writer; past
# this the row is left to the sweeper (an append cut off after Redis applied it is not repeated:
# the sweeper's append of the same event id is ignored).
PUBLISH_DEADLINE = 0.5


class ChannelOrder(Component):
    """No ordering across publishers (one node: appends already follow commit order)."""

    async def wait_turn(
        self,
        channel_id: str,
        seq: int,
        older_pending: OlderPending | None = None,
        max_wait: float | None = None,
    ) -> bool:
        """Waits until `seq`'s predecessor was appended; False when the wait gave up."""
        return True

    async def done(self, channel_id: str, seq: int) -> None:
        return None


class RedisChannelOrder(ChannelOrder):
    """The newest appended sequence of each channel, in Redis, shared by every node.

    A missing key (a channel not written for a day, or Redis lost its data) means "unknown":
    the publisher goes ahead unless the outbox still holds an older unpublished event of the
    channel, which the sweeper will publish (and announce) first. A Redis error while waiting
    is raised: the event then stays in the outbox and the sweeper publishes it in order, rather
    than a publish whose order nobody checked (redis-py may retry the append itself into a
    Redis that came back empty).
    """

    def __init__(
        self,
        redis: Any,
        prefix: str,
        *,
        max_wait_seconds: float = 5.0,
        ttl_seconds: float = 86400.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_wait = max_wait_seconds
        self.ttl_ms = int(ttl_seconds * 1000)
        self.waited = 0  # publishes that had to wait for a predecessor
        self.timeouts = 0  # waits that gave up

    def _key(self, channel_id: str) -> str:
        return f"{self.prefix}chanseq:{channel_id}"

    async def wait_turn(
        self,
        channel_id: str,
        seq: int,
        older_pending: OlderPending | None = None,
        max_wait: float | None = None,
    ) -> bool:
        limit = self.max_wait if max_wait is None else max_wait
        turn = True
        key = self._key(channel_id)
        started = time.monotonic()
        delay = 0.001
        next_db_check = 0.0
        while True:
            raw = await self.redis.get(key)
            if raw is not None and int(raw) >= seq - 1:
                break
            now = time.monotonic()
            if raw is None and now >= next_db_check:
                next_db_check = now + 0.1
                if older_pending is None or not await older_pending():
                    break
            if now - started >= limit:
                turn = False
                if max_wait is not None:
                    break  # the caller leaves the event to the sweeper
                self.timeouts += 1
                log.warning(
                    "channel event published without its predecessor",
                    extra={
                        "channel_id": channel_id,
                        "seq": seq,
                        "newest": int(raw) if raw is not None else None,
                    },
                )
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        if time.monotonic() - started > 0.002:
            self.waited += 1
        return turn

    async def done(self, channel_id: str, seq: int) -> None:
        """Nothing to do: the append script advances the channel's sequence atomically with
        the append (`RedisEventLog.append(channel=...)`)."""
        return None


def meta_to_json(meta: EventMeta) -> dict[str, Any]:
    return {
        "event": meta.event,
        "ephemeral": meta.ephemeral,
        "connection_id": meta.connection_id,
        "omit_connection_id": meta.omit_connection_id,
        "xid": meta.xid,
    }


def meta_from_json(data: dict[str, Any]) -> EventMeta:
    return EventMeta(
        event=str(data.get("event", "")),
        ephemeral=bool(data.get("ephemeral")),
        connection_id=str(data.get("connection_id", "")),
        omit_connection_id=str(data.get("omit_connection_id", "")),
        xid=int(data.get("xid") or 0),
    )


# The committing transaction's id: with a hello's snapshot it tells exactly whether the event
# committed before that hello (`hubbub.realtime.commitclock`).
_CURRENT_XID = text("SELECT pg_current_xact_id()::text")


async def transaction_id(conn: AsyncConnection) -> int:
    """The id of the PostgreSQL transaction open on `conn`; 0 on SQLite, whose single node
    never needs it. (Not cached: `conn.info` outlives the transaction, with the connection.)"""
    if conn.dialect.name != "postgresql":
        return 0
    return int((await conn.execute(_CURRENT_XID)).scalar_one())


class Outbox:
    def __init__(
        self,
        db: Database,
        eventlog: EventLog,
        grace_seconds: float = 2.0,
        keep_seconds: float = 3600.0,
        order: ChannelOrder | None = None,
        metrics: ClusterMetrics | None = None,
    ) -> None:
        self.db = db
        self.eventlog = eventlog
        self.order = order or ChannelOrder()
        self.metrics = metrics or ClusterMetrics()
        self.grace_ms = int(grace_seconds * 1000)
        self.keep_ms = int(keep_seconds * 1000)
        self._published: list[str] = []
        self.republished = 0
        self.deferred = 0  # rows left to the sweeper by the writer's path

    async def add(
        self,
        conn: AsyncConnection,
        recipients: list[str],
        body: bytes,
        meta: EventMeta,
        channel_id: str = "",
        channel_seq: int = 0,
    ) -> OutboxRow:
        """Records the event in the open transaction `conn`, with that transaction's id."""
        xid = await transaction_id(conn)
        if xid:
            meta = replace(meta, xid=xid)
        row = OutboxRow(new_id(), recipients, body, meta, channel_id, channel_seq)
        await conn.execute(
            insert(outbox).values(
                id=row.id,
                create_at=now_ms(),
                channel_id=channel_id,
                channel_seq=channel_seq,
                recipients=recipients,
                body=body.decode(),
                meta=meta_to_json(meta),
                published_at=0,
            )
        )
        return row

    async def publish(self, row: OutboxRow) -> None:
        """Appends a committed row to the event log (called right after the commit, while the
        writer waits for its answer). It never makes the writer wait long: while the event log
        is unreachable, when the channel's previous event is not appended within
        `PUBLISH_WAIT`, or when the append takes longer than `PUBLISH_DEADLINE` (Redis failing
        over), the row stays in the outbox and the sweeper appends it in order."""
        if not self.eventlog.available():
            self.deferred += 1
            self.metrics.outbox_deferred.inc()
            return
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._append_in_order(row, PUBLISH_WAIT), PUBLISH_DEADLINE)
        except (TimeoutError, RedisError, OSError) as exc:
            self.deferred += 1
            self.metrics.outbox_deferred.inc()
            log.info(
                "event left to the outbox sweeper",
                extra={"event_id": row.id, "cause": repr(exc) or type(exc).__name__},
            )
        took = time.monotonic() - started
        if took > 2 * PUBLISH_DEADLINE:
            log.warning("publishing an event held its writer", extra={"seconds": round(took, 3)})

    async def _append_in_order(self, row: OutboxRow, max_wait: float | None = None) -> None:
        """Appends after the channel's previous event; marks the row published (in the next
        batch) as soon as the append succeeded, whatever happens after. With `max_wait`, gives
        up (leaving the row) when the predecessor does not come in time; without it, appends
        anyway after the order's bounded wait, and the log marks the entry late."""
        ordered = bool(row.channel_id and row.channel_seq)
        if ordered:

            async def older_pending() -> bool:
                return await self._older_pending(row)

            turn = await self.order.wait_turn(
                row.channel_id, row.channel_seq, older_pending, max_wait
            )
            if not turn and max_wait is not None:
                self.deferred += 1
                self.metrics.outbox_deferred.inc()
                return
        channel = (row.channel_id, row.channel_seq) if ordered else None
        await self.eventlog.append(
            row.recipients, row.body, row.meta, event_id=row.id, channel=channel
        )
        self._published.append(row.id)

    async def _older_pending(self, row: OutboxRow) -> bool:
        """Whether an earlier event of `row`'s channel is committed but not yet appended (as
        far as this node knows: rows appended by others are marked within a second)."""
        async with self.db.read() as conn:
            ids = (
                await conn.execute(
                    select(outbox.c.id)
                    .where(
                        outbox.c.published_at == 0,
                        outbox.c.channel_id == row.channel_id,
                        outbox.c.channel_seq > 0,
                        outbox.c.channel_seq < row.channel_seq,
                    )
                    .limit(50)
                )
            ).scalars()
            mine = set(self._published)
            return any(i not in mine for i in ids)

    async def _due(self) -> list[Any]:
        cutoff = now_ms() - self.grace_ms
        async with self.db.read() as conn:
            rows = list(
                (
                    await conn.execute(
                        select(outbox)
                        .where(outbox.c.published_at == 0, outbox.c.create_at < cutoff)
                        .order_by(outbox.c.channel_id, outbox.c.channel_seq, outbox.c.create_at)
                        .limit(500)
                    )
                ).all()
            )
            newest: dict[str, int] = {}
            for r in rows:
                if r.channel_id and r.channel_seq:
                    newest[r.channel_id] = max(newest.get(r.channel_id, 0), int(r.channel_seq))
            if newest:
                younger = (
                    await conn.execute(
                        select(outbox).where(
                            outbox.c.published_at == 0,
                            outbox.c.create_at >= cutoff,
                            outbox.c.channel_id.in_(list(newest)),
                            outbox.c.channel_seq > 0,
                        )
                    )
                ).all()
                rows += [r for r in younger if int(r.channel_seq) < newest[r.channel_id]]
        mine = set(self._published)  # appended by this node, marked in the next flush
        rows = [r for r in rows if r.id not in mine]
        rows.sort(key=lambda r: (r.channel_id, int(r.channel_seq), int(r.create_at)))
        return rows

    async def flush(self) -> None:
        """Marks the rows appended since the last flush as published (one write)."""
        done, self._published = self._published, []
        if not done:
            return
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_(done)).values(published_at=now_ms())
                )
        except Exception:
            self._published.extend(done)
            raise

    async def sweep(self) -> int:
        """Republishes rows left unpublished longer than the grace period, each channel's in
        sequence order, together with any younger unpublished predecessors of theirs (so that
        no event waits for one that only a later round would append); returns how many."""
        if not self.eventlog.available():
            rows: list[Any] = []  # Redis is away: the rows wait; only the cleanup below runs
        else:
            rows = await self._due()
        for r in rows:
            # In channel order; a row whose predecessor is missing waits a bounded time.
            await self._append_in_order(
                OutboxRow(
                    r.id,
                    list(r.recipients),
                    r.body.encode(),
                    meta_from_json(r.meta),
                    r.channel_id,
                    int(r.channel_seq),
                )
            )
        if rows:
            self.republished += len(rows)
            self.metrics.outbox_republished.inc(len(rows))
            log.info("outbox republished events", extra={"count": len(rows)})
            await self.flush()
        async with self.db.write() as conn:
            await conn.execute(
                delete(outbox).where(
                    outbox.c.published_at > 0, outbox.c.create_at < now_ms() - self.keep_ms
                )
            )
        return len(rows)

    async def measure_backlog(self) -> None:
        """Sets the backlog gauges: rows not yet marked published, and the oldest one's age."""
        async with self.db.read() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(outbox.c.create_at)).where(
                        outbox.c.published_at == 0
                    )
                )
            ).one()
        self.metrics.outbox_rows.set(int(count))
        age = max(0.0, (now_ms() - int(oldest)) / 1000) if oldest is not None else 0.0
        self.metrics.outbox_oldest.set(age)


class OutboxSweeper(Component):
    """The outbox's background round, every `sweep_seconds`: mark what this node appended as
    published, then republish what any node left unpublished past the grace period."""

    def __init__(self, outbox: Outbox, sweep_seconds: float = 1.0) -> None:
        self.outbox = outbox
        self.sweep_seconds = sweep_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        with contextlib.suppress(Exception):
            await self.outbox.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.outbox.flush()
                await self.outbox.sweep()
                await self.outbox.measure_backlog()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database or the event log is unreachable: try again next round.
                log.warning("outbox sweep failed", exc_info=True)
