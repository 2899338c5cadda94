"""The event outbox: delivery of a committed change survives the death of the node that made it.

An event is written to the `outbox` table in the same transaction as its change. Right after the
commit the writing node appends it to the event log (idempotent by event id) and, in a batch a
moment later, marks it published. If the node dies in between, any node's sweeper finds the row
still unpublished after a grace period and appends it again; the event log ignores an id it has
already seen, so a republish never duplicates (DESIGN §4 invariant 1).

Per-channel order (invariant 6): an event that carries a channel sequence (posts, edits,
deletes, reactions: `channels.event_seq`, taken in the committing transaction, so gap-free in
commit order) is appended only after the channel's previous sequence numbers, by whichever node.
The log keeps, per channel, the newest sequence appended (`ChannelOrder`). A publisher whose
predecessor is not appended yet waits `PREDECESSOR_GRACE` for the predecessor's own writer
(normally a millisecond or two away), then appends the missing predecessors itself, from the
outbox rows on the primary, in sequence order, and then its own event. Appends are idempotent by
event id, so racing the predecessor's writer (or another node's sweeper) repeats nothing; and
since whoever appends an event first has appended its committed predecessors before it, the log
receives each channel's events in commit order. Nobody waits for a predecessor that is not coming
(its node died between commit and append), and one deferred row does not make every later event
of its channel wait for the sweeper.

An event can still reach the log after a later one of its channel only when its predecessor was
appended to an earlier incarnation of the log (Redis lost its data) and is appended again by a
sweeper that read it as unpublished just before; every connection then has a hello younger than
its commit and skips it as stale. The log marks such an event late anyway, and a connection never
sends a late event after its successor (it asks its client to start over with a fresh hello):
see `hubbub.realtime.connstate`.

Each row records its transaction's PostgreSQL id (`meta.xid`), so that a connection whose
hello came after the commit can skip it when the sweeper republishes it (after Redis lost its
data, the log's idempotence markers are gone): see `hubbub.realtime.commitclock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

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


# How long an append waits for the channel's previous event to be appended by its own writer (a
# few ms normally) before appending that event itself from the outbox.
PREDECESSOR_GRACE = 0.05
# The most missing predecessors a writer's request appends itself; more (the backlog of a Redis
# outage) is left to the sweeper, with the writer's own row.
WRITER_REPAIR_LIMIT = 50
# How long a writer's request may spend appending its event at all: while Redis fails over (the
# sentinels need a couple of seconds to agree), commands retry and would hold the writer; past
# this the row is left to the sweeper (an append cut off after Redis applied it is not repeated:
# the sweeper's append of the same event id is ignored).
PUBLISH_DEADLINE = 0.5


@dataclass(frozen=True, slots=True)
class Turn:
    """What `ChannelOrder.wait_turn` found: `ready` once the predecessor is appended; otherwise
    `newest`, the channel's newest appended sequence (None: unknown, because the channel has not
    been written for a day or Redis lost its data)."""

    ready: bool
    newest: int | None = None


READY = Turn(True)


class ChannelOrder(Component):
    """No ordering across publishers (one node: appends already follow commit order)."""

    async def wait_turn(self, channel_id: str, seq: int, max_wait: float | None = None) -> Turn:
        """Waits up to `max_wait` until `seq`'s predecessor was appended."""
        return READY


class RedisChannelOrder(ChannelOrder):
    """The newest appended sequence of each channel, in Redis, shared by every node; the append
    script advances it atomically with the append (`RedisEventLog.append(channel=...)`).

    A missing key means "unknown": nothing to wait for; the caller appends whatever older event
    of the channel the outbox still holds unpublished first. A Redis error while waiting is
    raised: the event then stays in the outbox and the sweeper publishes it in order, rather
    than a publish whose order nobody checked.
    """

    def __init__(
        self,
        redis: Any,
        prefix: str,
        *,
        grace_seconds: float = PREDECESSOR_GRACE,
        ttl_seconds: float = 86400.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.grace = grace_seconds
        self.ttl_ms = int(ttl_seconds * 1000)
        self.waited = 0  # appends that had to wait for a predecessor
        self.gaps = 0  # waits that ended with the predecessor still missing

    def _key(self, channel_id: str) -> str:
        return f"{self.prefix}chanseq:{channel_id}"

    async def wait_turn(self, channel_id: str, seq: int, max_wait: float | None = None) -> Turn:
        limit = self.grace if max_wait is None else max_wait
        key = self._key(channel_id)
        started = time.monotonic()
        delay = 0.001
        while True:
            raw = await self.redis.get(key)
            if raw is None:
                return READY if seq <= 1 else Turn(False, None)
            newest = int(raw)
            if newest >= seq - 1:
                if time.monotonic() - started > 0.002:
                    self.waited += 1
                return READY
            left = limit - (time.monotonic() - started)
            if left <= 0:
                self.gaps += 1
                return Turn(False, newest)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.02)


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
        self.repaired = 0  # predecessors appended by a later event's publisher
        self._running: set[asyncio.Task[bool]] = set()  # appends past their writer's deadline

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
        is unreachable, when more than `WRITER_REPAIR_LIMIT` earlier events of its channel are
        missing from the log, or when the append takes longer than `PUBLISH_DEADLINE` (Redis
        failing over), the row stays in the outbox and the sweeper appends it in order."""
        if not self.eventlog.available():
            self.deferred += 1
            self.metrics.outbox_deferred.inc()
            return
        started = time.monotonic()
        task = asyncio.get_running_loop().create_task(
            self._append_in_order(row, WRITER_REPAIR_LIMIT)
        )
        # Not `wait_for`: cancelling the append is not reliable (the Redis client's retries can
        # swallow the cancel, which held writers for 2 s after a Sentinel failover). An append
        # that is still running at the deadline goes on by itself: whether it succeeds later
        # (idempotent, and in order, as its predecessors were appended first) or fails (the
        # sweeper appends the row), the writer has its answer.
        done, _ = await asyncio.wait({task}, timeout=PUBLISH_DEADLINE)
        cause: BaseException | None = None
        if not done:
            self._running.add(task)
            task.add_done_callback(self._finished_late)
            cause = TimeoutError(f"append still running after {PUBLISH_DEADLINE} s")
        elif not task.cancelled():
            cause = task.exception()
        if cause is not None:
            # Committed whatever happens here: the writer gets its answer, the sweeper appends.
            self.deferred += 1
            self.metrics.outbox_deferred.inc()
            log.info(
                "event left to the outbox sweeper",
                extra={"event_id": row.id, "cause": repr(cause)},
            )
        took = time.monotonic() - started
        if took > 2 * PUBLISH_DEADLINE:
            log.warning("publishing an event held its writer", extra={"seconds": round(took, 3)})

    def _finished_late(self, task: asyncio.Task[bool]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the row is the sweeper's if this failed

    async def _append_in_order(
        self, row: OutboxRow, repair_limit: int | None, grace: float | None = None
    ) -> bool:
        """Appends `row` after every earlier committed event of its channel (appending those the
        log lacks first, see the module docstring) and marks it published (in the next batch) as
        soon as the append succeeded. False, appending nothing of its own, when more than
        `repair_limit` earlier events are missing (the writer's path leaves them to the
        sweeper)."""
        channel = None
        if row.channel_id and row.channel_seq:
            channel = (row.channel_id, row.channel_seq)
            turn = await self.order.wait_turn(row.channel_id, row.channel_seq, grace)
            if not turn.ready and not await self._append_predecessors(
                row, turn.newest, repair_limit
            ):
                self.deferred += 1
                self.metrics.outbox_deferred.inc()
                return False
        await self.eventlog.append(
            row.recipients, row.body, row.meta, event_id=row.id, channel=channel
        )
        self._published.append(row.id)
        return True

    async def _append_predecessors(
        self, row: OutboxRow, newest: int | None, limit: int | None
    ) -> bool:
        """Appends, in sequence order, the committed events of `row`'s channel older than it and
        newer than `newest` (the newest the log has; None: unknown) that no node has marked
        published. A row some node appended without marking it yet is appended again, which the
        log ignores. Rows marked published but missing from the log were appended to an earlier
        incarnation of it (Redis lost its data): every connection has them from its refetch,
        and they are not appended again. False when more than `limit` are missing."""
        query = (
            select(outbox)
            .where(
                outbox.c.channel_id == row.channel_id,
                outbox.c.published_at == 0,
                outbox.c.channel_seq > (newest or 0),
                outbox.c.channel_seq < row.channel_seq,
            )
            .order_by(outbox.c.channel_seq)
        )
        if limit is not None:
            query = query.limit(limit + 1)
        # The primary: each of them committed before `row` did, so it sees them all.
        async with self.db.read_primary() as conn:
            rows = (await conn.execute(query)).all()
        if limit is not None and len(rows) > limit:
            return False
        mine = set(self._published)
        for r in rows:
            if r.id in mine:
                continue
            await self.eventlog.append(
                list(r.recipients),
                r.body.encode(),
                meta_from_json(r.meta),
                event_id=r.id,
                channel=(r.channel_id, int(r.channel_seq)),
            )
            self._published.append(r.id)
            self.repaired += 1
        return True

    async def _due(self) -> list[Any]:
        # Due: older than the grace period, or exactly as old (with no grace, a row committed
        # in this same millisecond is due too).
        cutoff = now_ms() - self.grace_ms
        async with self.db.read() as conn:
            rows = list(
                (
                    await conn.execute(
                        select(outbox)
                        .where(outbox.c.published_at == 0, outbox.c.create_at <= cutoff)
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
                            outbox.c.create_at > cutoff,
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
        mine = set(self._published)
        for r in rows:
            if r.id in mine:
                continue  # appended meanwhile, as a predecessor of an earlier row
            # In channel order; no waiting: a predecessor still missing is appended first.
            await self._append_in_order(
                OutboxRow(
                    r.id,
                    list(r.recipients),
                    r.body.encode(),
                    meta_from_json(r.meta),
                    r.channel_id,
                    int(r.channel_seq),
                ),
                repair_limit=None,
                grace=0.0,
            )
            mine.update(self._published)
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
