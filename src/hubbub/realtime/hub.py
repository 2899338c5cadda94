"""The node's hub: which websocket connections live here, live delivery, attach and resume.

Data flow: `EventLog.append` -> `Hub.deliver(delivery)` (once per event, with every recipient
and its log position) -> `WebConn.offer` for each local connection of each recipient (seq
stamped, written to the socket at once, or queued while the peer is not reading). A typing or
reaction event skips the connections that have another channel open (`realtime/scope.py`).

Each connection's resume state (seq, log position) is recorded in the connection registry by
the hub's checkpoint loop about once a second, in one batch, and by the connection when it
closes.

Attaching a connection (fresh or resumed) first registers it for live delivery in "holding"
mode, then reads the log (replay or head), then releases held entries newer than what it read,
so nothing published meanwhile is lost or duplicated.

Cluster messages the hub owns or follows: `Takeover` (a resumed connection's old socket may live
on another node: silence it there) and `SessionsRevoked` (close the sockets of revoked sessions).
When the event log loses continuity (`EventLog.on_reset`), every local connection is closed with
a resumable code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubbub.cluster.bus import BusMessage, ClusterBus
from hubbub.cluster.connections import (
    MAX_CHECKPOINTS,
    Checkpoint,
    ConnectionRecord,
    ConnectionRegistry,
)
from hubbub.cluster.eventlog import Delivery, EventLog, LogEntry
from hubbub.ids import is_valid_id, new_id
from hubbub.lifecycle import Component
from hubbub.observability.metrics import Metrics
from hubbub.realtime.commitclock import CommitClock, Snapshot
from hubbub.realtime.connstate import Refusal
from hubbub.realtime.protocol import CloseReason, event_prefix
from hubbub.realtime.scope import scoped_channel
from hubbub.services.auth import SessionsRevoked
from hubbub.tasks import stop_task

if TYPE_CHECKING:
    from hubbub.realtime.session import WebConn

log = logging.getLogger("hubbub.realtime")

REPLAY_PAGE = 500
CHECKPOINT_INTERVAL = 1.0  # seconds between checkpoint batches
CHECKPOINT_TIMEOUT = 2.0  # seconds a batch may take before the loop moves on


@dataclass(frozen=True, slots=True)
class AttachResult:
    connection_id: str
    resumed: bool  # no hello: the client continues its sequence
    outcome: str  # "fresh", "success", "lossless" or "failure"
    replayed: int = 0


@dataclass(frozen=True)
class Takeover(BusMessage, kind="takeover"):
    """Connection `connection_id` resumed elsewhere as instance `instance`: whichever node still
    holds an older socket of it closes that socket without another frame."""

    connection_id: str
    instance: str


class Hub(Component):
    def __init__(
        self,
        eventlog: EventLog,
        registry: ConnectionRegistry,
        metrics: Metrics,
        bus: ClusterBus,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        before_hello: Callable[[str], Awaitable[None]] | None = None,
        clock: CommitClock | None = None,
        event_scope: bool = True,
        hold_after_skip: bool = False,
    ) -> None:
        self.eventlog = eventlog
        # In a cluster: a connection that skipped a live event sends nothing more until the
        # skip's checkpoint is recorded (`skip_gate`). One node alone needs no such wait: if it
        # dies, no other node resumes its connections.
        self.hold_after_skip = hold_after_skip
        self._gate: asyncio.Event | None = None  # released by the next successful batch
        self._unreleased: list[asyncio.Event] = []  # taken by batches that failed
        self._soon: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        # FeatureFlags.WebSocketEventScope: typing and reactions only where their channel is
        # open (realtime/scope.py).
        self.event_scope = event_scope
        # Called with the user id right before a fresh hello: the database records the
        # primary's position for the user, so the refetch the hello asks for reads fresh data
        # (delivery invariant 9, store/consistency.py).
        self.before_hello = before_hello
        self.clock = clock or CommitClock()
        self.registry = registry
        self.metrics = metrics
        self.checkpoint_interval = checkpoint_interval
        self._by_user: dict[str, set[WebConn]] = {}
        self._by_id: dict[str, WebConn] = {}
        self._checkpointer: asyncio.Task[None] | None = None
        self._orphans: dict[str, list[Checkpoint]] = {}  # see _keep_orphans
        self.bus = bus
        eventlog.subscribe(self.deliver)
        eventlog.on_reset(self.reset_all)
        bus.subscribe(Takeover, self._on_takeover)
        bus.subscribe(SessionsRevoked, self._on_revoked)

    # Live delivery

    def deliver(self, delivery: Delivery) -> None:
        by_user = self._by_user
        if not by_user:
            return
        meta = delivery.meta
        targeted = bool(meta.connection_id or meta.omit_connection_id)
        scope = scoped_channel(meta.event, delivery.payload) if self.event_scope else ""
        prefix = b""
        sent = 0
        for user_id, pos in zip(delivery.users, delivery.positions, strict=True):
            conns = by_user.get(user_id)
            if conns is None:
                continue
            if not prefix:
                prefix = event_prefix(delivery.payload)
            # offer() never adds or removes connections, so the set can be walked as it is.
            for conn in conns:
                if targeted and not meta.matches(conn.connection_id):
                    continue
                if scope and conn.view is not None and conn.view.hides(scope):
                    conn.pass_over(pos, meta.event)
                    continue
                if conn.offer(pos, prefix, meta):
                    sent += 1
        if sent:
            self.metrics.broadcast(meta.event).inc(sent)

    # Checkpoints

    async def start(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_loop())

    async def stop(self) -> None:
        if self._by_id:
            await self.close_all(CloseReason.SERVER_DRAIN)
        if self._checkpointer is not None:
            # stop_task: the loop awaits registry calls under wait_for, which can lose a cancel.
            await stop_task(self._checkpointer)
            self._checkpointer = None
        if self._soon is not None:
            await stop_task(self._soon)
        await self.flush_checkpoints()

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            try:
                await self.flush_checkpoints()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checkpoint batch failed")

    def skip_gate(self) -> asyncio.Event:
        """For a connection that just skipped a live event: an event set once a batch that
        holds the skip's checkpoint is recorded; that batch is started at once."""
        if self._gate is None:
            self._gate = asyncio.Event()
        if self._soon is None:
            self._soon = asyncio.get_running_loop().create_task(self._flush_soon())
        return self._gate

    async def _flush_soon(self) -> None:
        try:
            while self._gate is not None:
                if not await self.flush_checkpoints():
                    break  # the registry is failing: the checkpoint loop retries
        except Exception:
            log.exception("checkpoint batch failed")
        finally:
            self._soon = None

    async def flush_checkpoints(self) -> bool:
        """Records every local connection's new checkpoints, and those of closed connections
        whose last flush failed, in one batch. False when the registry failed. Batches run
        one at a time; a successful one releases the connections waiting on a skip."""
        async with self._flush_lock:
            # Taken right before the checkpoints (no await between): every connection that
            # waits on this gate has its skip's checkpoint in this batch.
            gate, self._gate = self._gate, None
            if gate is not None:
                self._unreleased.append(gate)
            recorded = await self._flush_checkpoints()
            if recorded:
                for waiting in self._unreleased:
                    waiting.set()
                self._unreleased.clear()
            return recorded

    async def _flush_checkpoints(self) -> bool:
        batch: list[tuple[str, list[Checkpoint]]] = list(self._orphans.items())
        conns = []
        for conn in self._by_id.values():
            if not conn.connection_id:
                continue
            checkpoints = conn.take_checkpoints()
            if checkpoints:
                batch.append((conn.connection_id, checkpoints))
                conns.append(conn)
        if not batch:
            return True
        orphaned = len(self._orphans)
        try:
            await asyncio.wait_for(self.registry.checkpoint_many(batch), CHECKPOINT_TIMEOUT)
        except Exception as exc:
            for conn, (_, checkpoints) in zip(conns, batch[orphaned:], strict=True):
                conn.checkpoints_failed(checkpoints, exc)
                if self._by_id.get(conn.connection_id) is not conn:
                    self._keep_orphans(conn)  # removed meanwhile: keep them here
            return False
        for connection_id, sent in batch[:orphaned]:
            # Unless more were kept for it meanwhile (a new list then), they are recorded.
            if self._orphans.get(connection_id) is sent:
                del self._orphans[connection_id]
        for conn in conns:
            conn.checkpoints_recorded()
        return True

    def _keep_orphans(self, conn: WebConn) -> None:
        """A connection leaves with checkpoints the registry has not taken (it was failing).
        They are retried with every batch, and until they are recorded the connection cannot
        be resumed: walking the log without a checkpoint taken after a skipped event would
        number the events wrongly."""
        leftover = conn.take_checkpoints() if conn.connection_id else []
        if leftover:
            self._orphans[conn.connection_id] = self._orphans.get(conn.connection_id, []) + leftover

    # Registry of local connections

    def connections(self) -> list[WebConn]:
        return list(self._by_id.values())

    def count(self) -> int:
        return len(self._by_id)

    def user_connection_count(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    def _add(self, conn: WebConn) -> None:
        self._by_user.setdefault(conn.user_id, set()).add(conn)
        self._by_id[conn.connection_id] = conn
        self.metrics.websockets.set(len(self._by_id))

    def remove(self, conn: WebConn) -> None:
        if self._by_id.get(conn.connection_id) is conn:
            del self._by_id[conn.connection_id]
        self._keep_orphans(conn)
        users = self._by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self._by_user[conn.user_id]
        self.metrics.websockets.set(len(self._by_id))

    # Attach and resume

    async def attach(
        self, conn: WebConn, requested_id: str, sequence_number: int | None
    ) -> AttachResult:
        """Registers an authenticated connection, resuming `requested_id` when possible."""
        record = None
        if requested_id and is_valid_id(requested_id) and sequence_number is not None:
            old = self._by_id.get(requested_id)
            if old is not None and old.user_id == conn.user_id:
                # The old socket still looks open here: silence it, then record where it got
                # to, so the resume below starts from its newest checkpoint.
                old.silence()
                await old.flush_checkpoints()
                await self.take_over_local(requested_id)
            # Where the old socket got to must be recorded before its record is read; if the
            # registry still refuses, there is no exact resume (a fresh connection instead).
            recorded = requested_id not in self._orphans or await self.flush_checkpoints()
            record = await self.registry.get(requested_id) if recorded else None
            if record is not None and (
                record.user_id != conn.user_id or record.epoch != self.eventlog.epoch
            ):
                record = None
        if record is None or sequence_number is None or sequence_number <= 0:
            if requested_id:
                self.metrics.reconnects.labels("failure").inc()
            return await self._attach_fresh(conn, failed=bool(requested_id))
        await self._take_over(record.connection_id, conn.instance_id)
        result = await self._attach_resume(conn, record, sequence_number)
        if result is None:
            await self.registry.forget(record.connection_id)
            self.metrics.reconnects.labels("failure").inc()
            return await self._attach_fresh(conn, failed=True)
        self.metrics.reconnects.labels(result.outcome).inc()
        self.metrics.replayed.inc(result.replayed)
        return result

    async def _take_over(self, connection_id: str, new_instance: str) -> None:
        if self._by_id.get(connection_id) is not None:
            await self.take_over_local(connection_id)
        else:
            # The old socket may live on another node: tell every node to silence it.
            await self.bus.publish(Takeover(connection_id, new_instance))

    async def _on_takeover(self, message: Takeover) -> None:
        await self.take_over_local(message.connection_id, message.instance)

    async def _on_revoked(self, message: SessionsRevoked) -> None:
        """Closes every local socket opened with one of the revoked tokens."""
        tokens = set(message.tokens)
        closing = [c for c in self.connections() if c.session_token in tokens]
        await asyncio.gather(*(c.close(CloseReason.SESSION_REVOKED) for c in closing))

    async def take_over_local(self, connection_id: str, keep_instance: str = "") -> None:
        old = self._by_id.get(connection_id)
        if old is None or old.instance_id == keep_instance:
            return
        # Not one more frame on the old socket: stop its writer before anything else.
        old.silence()
        self.remove(old)
        await old.close(CloseReason.REPLACED)

    async def release(self, connection_id: str, user_id: str, *, forget: bool) -> bool:
        """A connection closed: its registry record is detached (kept for a resume elsewhere)
        or, with `forget`, deleted. True when the user has no live connection left on any
        node."""
        await self.registry.detach(connection_id)
        if forget:
            await self.registry.forget(connection_id)
        return await self.registry.live_connections(user_id) == 0

    async def reset_all(self, reason: str) -> None:
        """Live delivery lost continuity (the bus missed messages or Redis lost its data): close
        every connection with a resumable code; each resumes exactly from the log or gets a new
        connection id and refetches."""
        log.warning("closing all websockets to resync", extra={"cause": reason})
        await self.close_all(CloseReason.RESYNC)

    async def _attach_fresh(self, conn: WebConn, failed: bool) -> AttachResult:
        conn.connection_id = new_id()
        conn.begin(seq=0)
        self._add(conn)
        head = await self.eventlog.head(conn.user_id)
        # After the head: an event appended later than the head read but committed before
        # this snapshot is in the client's refetch, and skipped here (commitclock.py).
        snapshot = await self.clock.snapshot()
        conn.stream.hello_snapshot = Snapshot.parse(snapshot)
        # After the snapshot: what it counts as committed is then older than the position the
        # refetch will read at least up to (a replica only once it replayed past it).
        if self.before_hello is not None:
            await self.before_hello(conn.user_id)
        conn.send_hello()
        conn.release(after_pos=head)
        await self.registry.open(
            ConnectionRecord(
                conn.connection_id, conn.user_id, self.eventlog.epoch, snapshot=snapshot
            )
        )
        await self.registry.checkpoint(conn.connection_id, Checkpoint(0, head))
        return AttachResult(conn.connection_id, False, "failure" if failed else "fresh")

    async def _attach_resume(
        self, conn: WebConn, record: ConnectionRecord, sequence_number: int
    ) -> AttachResult | None:
        """Replays what the client missed, or None when that cannot be done exactly."""
        last_seen = sequence_number - 1
        cp = record.best_checkpoint(last_seen)
        if cp is None:
            return None
        conn.connection_id = record.connection_id
        conn.stream.hello_snapshot = Snapshot.parse(record.snapshot)
        conn.begin(seq=sequence_number)
        self._add(conn)
        seq = cp.seq
        pos = cp.pos
        resume_pos = cp.pos
        replay: list[LogEntry] = []
        found = seq == last_seen
        while True:
            # In the record's epoch: this node may not have noticed yet that Redis lost its data,
            # and the new incarnation's entries (a republished post among them) must not be
            # walked as if the client's numbering went on there.
            page = await self.eventlog.read(conn.user_id, pos, REPLAY_PAGE, epoch=record.epoch)
            if page.truncated:
                self.remove(conn)
                return None
            for entry in page.entries:
                pos = entry.pos
                if not entry.meta.matches(conn.connection_id):
                    continue
                if entry.meta.xid or entry.meta.late:
                    # As live delivery decided (or would have): skipped, or a fresh hello.
                    refusal = conn.stream.stale_or_late(entry.meta)
                    if refusal is Refusal.STALE:
                        continue
                    if refusal is Refusal.RESYNC:
                        self.remove(conn)
                        return None
                if found:
                    replay.append(entry)  # WebConn.replay skips stale typing/status events
                else:
                    seq += 1
                    if seq == last_seen:
                        found = True
                        resume_pos = entry.pos
            if not page.limited:
                break
        if not found:
            # The client claims events this connection never had: start over.
            self.remove(conn)
            return None
        frames = conn.number_replay(replay)
        replayed = len(frames)
        # Checkpoints above what the client saw belong to a numbering it never received (an
        # earlier connection sent them, or queued them, after the client's last frame; a replay
        # skips stale events, so the new numbering differs): drop them, or a later resume could
        # pick one and replay an event twice. The replay's own checkpoints (one after each
        # skipped typing or status event) are recorded with the record, before a frame of it
        # goes out: if this node dies before its checkpoint loop runs, a resume elsewhere must
        # not walk across such a skip from an older checkpoint (it would count the skipped event
        # and replay one event the client has).
        record.checkpoints = [cp for cp in record.checkpoints if cp.seq < last_seen]
        record.checkpoints.append(Checkpoint(last_seen, resume_pos))
        record.checkpoints.extend(conn.take_checkpoints())
        # The oldest go first, as in the registry: a resume before them starts over instead.
        del record.checkpoints[:-MAX_CHECKPOINTS]
        await self.registry.open(record)
        conn.send_replay(frames)
        conn.release(after_pos=pos)
        outcome = "success" if replayed else "lossless"
        return AttachResult(record.connection_id, True, outcome, replayed)

    async def close_all(self, reason: CloseReason) -> None:
        for conn in self.connections():
            await conn.close(reason)
