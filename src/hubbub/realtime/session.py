"""One websocket connection: a bounded send queue, a writer task, keep-alive and the close log.

Events are stamped with the connection's next `seq` when they are queued, so the queue never
reorders them; replies (`seq_reply`) go through a separate queue that is written first, so a
`ping` is answered even during a long resume replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Send

from hubbub.cluster.connections import Checkpoint, ConnectionRegistry
from hubbub.cluster.eventlog import EventMeta, LogEntry
from hubbub.ids import new_id
from hubbub.observability.metrics import Metrics
from hubbub.realtime.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_READ_TIMEOUT,
    CLOSE_REPLACED,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN,
    CloseReason,
    ConnState,
    check_transition,
    event_prefix,
    hello_body,
    stamp,
)
from hubbub.realtime.transport import FrameLink

log = logging.getLogger("hubbub.realtime")

_CLOSE_CODES = {
    CloseReason.SLOW_CONSUMER: CLOSE_TRY_AGAIN,
    CloseReason.SERVER_DRAIN: CLOSE_SERVICE_RESTART,
    CloseReason.AUTH_FAILED: CLOSE_AUTH_FAILED,
    CloseReason.PROTOCOL_ERROR: CLOSE_PROTOCOL_ERROR,
    CloseReason.READ_TIMEOUT: CLOSE_READ_TIMEOUT,
    CloseReason.REPLACED: CLOSE_REPLACED,
    CloseReason.SESSION_REVOKED: CLOSE_AUTH_FAILED,
    CloseReason.WRITE_TIMEOUT: CLOSE_TRY_AGAIN,
    CloseReason.RESYNC: CLOSE_TRY_AGAIN,
    CloseReason.BACKEND_ERROR: CLOSE_TRY_AGAIN,
}

CHECKPOINT_TIMEOUT = 2.0  # seconds a checkpoint may take before the writer moves on

# Closes for a peer that stopped reading: they must not wait on the paused transport.
_STALLED = {CloseReason.SLOW_CONSUMER, CloseReason.WRITE_TIMEOUT}
_OPEN = ConnState.OPEN


@dataclass(frozen=True)
class ConnLimits:
    queue_size: int = 256  # Mattermost's sendQueueSize
    slow_threshold: int = 128  # above this, ephemeral events are dropped
    write_timeout: float = 30.0
    ping_interval: float = 25.0
    pong_timeout: float = 60.0
    auth_timeout: float = 5.0


@dataclass(slots=True)
class ConnInfo:
    """Facts for the close log line."""

    remote: str
    forwarded_for: str
    user_agent: str
    node: str
    client_reported_code: int | None = None


class WebConn:
    """One websocket. Frames are written straight to the transport while it accepts them, as
    `websockets.broadcast()` does; only while it is paused (the peer is not reading) do they
    wait in a bounded queue, drained by a writer task that exists just for that time. An idle
    connection therefore holds no task, no event and no queue.

    The resume state is two integers: the `seq` of the newest event and its log position. The
    hub records it in the connection registry about once a second (`take_checkpoints`) and when
    the socket closes; a checkpoint taken right after a dropped event is kept apart, because it
    must be recorded (the seq/position correspondence changes there).
    """

    __slots__ = (
        "__weakref__",
        "_checkpoint_failing",
        "_close_code",
        "_close_reason",
        "_closing_task",
        "_cp_pos",
        "_cp_recorded",
        "_cp_seq",
        "_events",
        "_held",
        "_holding",
        "_last_pos",
        "_must_record",
        "_on_closed",
        "_paused_since",
        "_replies",
        "_send",
        "_seq",
        "_silenced",
        "_timer",
        "_writer",
        "active_channel",
        "connection_id",
        "info",
        "instance_id",
        "limits",
        "link",
        "metrics",
        "opened_at",
        "registry",
        "server_version",
        "session_token",
        "state",
        "user_id",
    )

    def __init__(
        self,
        send: Send,
        link: FrameLink,
        limits: ConnLimits,
        registry: ConnectionRegistry,
        metrics: Metrics,
        info: ConnInfo,
        server_version: str,
        on_closed: Callable[[WebConn, CloseReason], Awaitable[None]],
    ) -> None:
        self._send = send
        self.link = link
        self.limits = limits
        self.registry = registry
        self.metrics = metrics
        self.info = info
        self.server_version = server_version
        self._on_closed = on_closed
        self.state = ConnState.AWAITING_AUTH
        self.instance_id = new_id()  # this socket, as opposed to the resumable connection id
        self.user_id = ""
        self.session_token = ""
        self.connection_id = ""
        self.opened_at = time.monotonic()
        self.active_channel = ""
        self._seq = 0
        self._last_pos = 0
        self._holding = False
        self._held: list[tuple[int, bytes, EventMeta]] | None = None
        # Frames waiting for a paused transport (created on first use, dropped when drained).
        self._events: deque[bytes] | None = None
        self._replies: deque[bytes] | None = None
        # Resume state: the newest (seq, pos), what was last recorded, and checkpoints taken
        # right after a dropped event, which a later one must not replace.
        self._cp_seq = -1
        self._cp_pos = 0
        self._cp_recorded = (-1, 0)
        self._must_record: list[tuple[int, int]] | None = None
        self._checkpoint_failing = False
        self._silenced = False
        self._close_reason: CloseReason | None = None
        self._close_code: int | None = None
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing_task: asyncio.Task[None] | None = None
        self._paused_since: float | None = None  # when the writer started waiting on the peer

    # State

    def _set_state(self, new: ConnState) -> None:
        check_transition(self.state, new)
        self.state = new

    @property
    def close_reason(self) -> CloseReason | None:
        return self._close_reason

    def authenticate(self, user_id: str, token: str) -> None:
        self.user_id = user_id
        self.session_token = token

    def begin(self, seq: int, holding: bool) -> None:
        """Opens the stream at `seq`; while holding, live events wait for `release`."""
        if self.state is ConnState.AWAITING_AUTH:
            self._set_state(ConnState.OPEN)
        self._seq = seq
        self._holding = holding

    def release(self, after_pos: int) -> None:
        self._last_pos = max(self._last_pos, after_pos)
        self._holding = False
        held, self._held = self._held, None
        for pos, prefix, meta in held or ():
            self.offer(pos, prefix, meta)

    # Sending

    def send_hello(self) -> None:
        body = hello_body(self.connection_id, self.user_id, self.server_version, self.info.node)
        self._write(stamp(body, self._seq), reply=False)
        self._seq += 1

    def send_reply(self, frame: bytes) -> None:
        if self.state in (ConnState.CLOSING, ConnState.CLOSED) or self._silenced:
            return
        self._write(frame, reply=True)

    def replay(self, entries: list[LogEntry]) -> int:
        """Sends missed events; typing and status events are best effort and stale by now, so
        they are skipped. Returns how many were sent."""
        sent = 0
        for entry in entries:
            if entry.meta.ephemeral:
                self._skip(entry.pos)
            else:
                self._emit(entry.pos, event_prefix(entry.payload))
                sent += 1
        return sent

    def offer(self, pos: int, prefix: bytes, meta: EventMeta) -> bool:
        """Sends a live event at log position `pos` (`prefix` from `event_prefix`); the hub calls
        this for each connection of each recipient. True when it was sent or queued.

        The hot path of fan-out: `_emit` and `_write` are inlined here."""
        if self._holding:
            if self._held is None:
                self._held = []
            self._held.append((pos, prefix, meta))
            return False
        if pos <= self._last_pos or self.state is not _OPEN or self._silenced:
            return False
        events = self._events
        if events:
            backlog = len(events)
            if backlog >= self.limits.slow_threshold and meta.ephemeral:
                self.metrics.dropped.labels(meta.event).inc()
                self._skip(pos)
                return False
            if backlog >= self.limits.queue_size:
                self.close_soon(CloseReason.SLOW_CONSUMER)
                return False
        seq = self._seq
        self._seq = seq + 1
        self._cp_seq = seq
        self._cp_pos = self._last_pos = pos
        link = self.link
        if self._writer is None and link.can_write():
            link.write_text(prefix + b"%d}" % seq)
        else:
            self._queue(prefix + b"%d}" % seq, reply=False)
        return True

    def _skip(self, pos: int) -> None:
        """An event of this connection that gets no seq (dropped, or stale in a replay). A
        resume walks the log from a checkpoint giving each matching event the next seq, so a
        skip needs a checkpoint right after it, one that must be recorded."""
        if pos > self._last_pos:
            self._last_pos = pos
        cp = (self._seq - 1, pos)
        self._cp_seq, self._cp_pos = cp
        must = self._must_record
        if must is None:
            self._must_record = [cp]
        elif must[-1][0] == cp[0]:
            must[-1] = cp  # consecutive skips: the newest position says it all
        else:
            must.append(cp)

    def _emit(self, pos: int, prefix: bytes) -> None:
        seq = self._seq
        self._seq = seq + 1
        self._cp_seq = seq
        self._cp_pos = pos
        if pos > self._last_pos:
            self._last_pos = pos
        self._write(prefix + b"%d}" % seq, reply=False)

    def _write(self, frame: bytes, reply: bool) -> None:
        link = self.link
        if self._writer is None and link.can_write():
            link.write_text(frame)
        else:
            self._queue(frame, reply)

    def _queue(self, frame: bytes, reply: bool) -> None:
        """Keeps a frame for the writer task (started here if needed)."""
        if reply:
            if self._replies is None:
                self._replies = deque()
            self._replies.append(frame)
        else:
            if self._events is None:
                self._events = deque()
            self._events.append(frame)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        """Drains the queues while the transport lets it; runs only while frames wait."""
        link = self.link
        loop = asyncio.get_running_loop()
        try:
            while not self._silenced:
                replies, events = self._replies, self._events
                queue = replies if replies else events
                if not queue:
                    break
                if link.closed():
                    break  # the close handshake or the disconnect ends this connection
                if not link.can_write():
                    # The peer is not reading: give it the write timeout to start again.
                    self._paused_since = loop.time()
                    timer = loop.call_later(
                        self.limits.write_timeout, self.close_soon, CloseReason.WRITE_TIMEOUT
                    )
                    try:
                        await link.wait_writable()
                    finally:
                        timer.cancel()
                        self._paused_since = None
                    continue
                link.write_text(queue.popleft())
        except Exception:
            # The peer went away while we wrote; the reader sees the disconnect and logs it.
            pass
        finally:
            self._paused_since = None
            self._writer = None
            self._events = None
            self._replies = None

    def queued(self) -> int:
        """Events waiting for a paused transport."""
        return len(self._events) if self._events else 0

    # Resume state

    def take_checkpoints(self) -> list[Checkpoint]:
        """Checkpoints not recorded yet, oldest first; the caller records them (and calls
        `checkpoints_failed` with them if that fails)."""
        out = [Checkpoint(s, p) for s, p in self._must_record or ()]
        self._must_record = None
        latest = (self._cp_seq, self._cp_pos)
        if latest[0] >= 0 and latest != self._cp_recorded:
            if not out or (out[-1].seq, out[-1].pos) != latest:
                out.append(Checkpoint(*latest))
            self._cp_recorded = latest
        return out

    def checkpoints_failed(self, checkpoints: list[Checkpoint], exc: BaseException) -> None:
        """Puts checkpoints that could not be recorded back, to be retried with the next ones.
        Meanwhile a resume on another node walks from an older checkpoint: exact unless a skip
        happened since; if this socket closes first, the hub keeps them (`Hub._keep_orphans`)
        and refuses to resume it here until they are recorded."""
        if not self._checkpoint_failing:
            log.warning(
                "could not record a websocket checkpoint; retrying",
                extra={"connection_id": self.connection_id, "error": repr(exc)},
            )
        self._checkpoint_failing = True
        # Not truncated: a resume walking from an older checkpoint needs every checkpoint taken
        # after a skip; the list grows only by skips while the registry is failing.
        self._must_record = [(cp.seq, cp.pos) for cp in checkpoints] + list(self._must_record or ())

    def checkpoints_recorded(self) -> None:
        self._checkpoint_failing = False

    async def flush_checkpoints(self) -> None:
        checkpoints = self.take_checkpoints()
        if not checkpoints:
            return
        try:
            await asyncio.wait_for(
                self.registry.checkpoint_many([(self.connection_id, checkpoints)]),
                CHECKPOINT_TIMEOUT,
            )
        except asyncio.CancelledError:
            self.checkpoints_failed(checkpoints, asyncio.CancelledError())
            raise
        except Exception as exc:
            self.checkpoints_failed(checkpoints, exc)
            return
        self.checkpoints_recorded()

    # Keep-alive

    def start_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.limits.ping_interval, self._keepalive)

    def _keepalive(self) -> None:
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return
        loop = asyncio.get_running_loop()
        silent_for = loop.time() - self.link.last_frame_at
        if silent_for >= self.limits.pong_timeout:
            self.close_soon(CloseReason.READ_TIMEOUT)
            return
        self.link.send_ping()
        delay = min(self.limits.ping_interval, self.limits.pong_timeout - silent_for)
        self._timer = loop.call_later(max(0.05, delay), self._keepalive)

    def start_auth_timer(self) -> None:
        loop = asyncio.get_running_loop()

        def expire() -> None:
            if self.state is ConnState.AWAITING_AUTH:
                self.close_soon(CloseReason.AUTH_FAILED)

        self._timer = loop.call_later(self.limits.auth_timeout, expire)

    def since_last_frame(self) -> float:
        return asyncio.get_running_loop().time() - self.link.last_frame_at

    # Closing

    def silence(self) -> None:
        """Stops all writing at once (a resumed connection is taking this one over)."""
        self._silenced = True
        self._events = None
        self._replies = None
        if self._writer is not None:
            self._writer.cancel()

    def close_soon(self, reason: CloseReason) -> None:
        if self._closing_task is None and self.state not in (ConnState.CLOSING, ConnState.CLOSED):
            self._closing_task = asyncio.get_running_loop().create_task(self.close(reason))

    async def close(self, reason: CloseReason, code: int | None = None) -> None:
        """Closes from the server side with the code for `reason`."""
        if self.state in (ConnState.CLOSING, ConnState.CLOSED):
            return
        self._set_state(ConnState.CLOSING)
        self._close_reason = reason
        self._close_code = code or _CLOSE_CODES.get(reason, CLOSE_NORMAL)
        if reason is CloseReason.REPLACED:
            self.silence()
            self.link.abort()
        elif reason in _STALLED:
            # The peer is not reading, so the transport is paused for flow control and a close
            # sent through ASGI would wait for it forever. Put the close frame behind what is
            # already buffered, write nothing more, and drop the connection if the peer has not
            # read up to it within the write timeout.
            self.silence()
            self.link.send_close(self._close_code)
            asyncio.get_running_loop().call_later(self.limits.write_timeout, self.link.abort)
        else:
            # Frames still queued for a paused transport go first: uvicorn's close waits for
            # the transport too, and the writer, waiting longer, is woken first.
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": self._close_code})
            if reason is CloseReason.READ_TIMEOUT:
                self.link.abort()
        await self.finish(reason, self._close_code)

    async def finish(self, reason: CloseReason, code: int) -> None:
        """Final bookkeeping, exactly once per connection."""
        if self.state is ConnState.CLOSED:
            return
        if self.state is not ConnState.CLOSING:
            self._set_state(ConnState.CLOSING)
        self._set_state(ConnState.CLOSED)
        if self._timer is not None:
            self._timer.cancel()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        if self.connection_id and reason is not CloseReason.REPLACED:
            # What the client saw last, for a resume on any node.
            await self.flush_checkpoints()
        self.metrics.disconnects.labels(reason.value).inc()
        fields: dict[str, Any] = {
            "reason": reason.value,
            "close_code": code,
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "age_seconds": round(time.monotonic() - self.opened_at, 3),
            "since_last_frame_seconds": round(self.since_last_frame(), 3),
            "node": self.info.node,
            "remote": self.info.remote,
            "forwarded_for": self.info.forwarded_for,
            "user_agent": self.info.user_agent,
            "seq": self._seq,
        }
        if self.info.client_reported_code is not None:
            fields["client_reported_code"] = self.info.client_reported_code
        level = logging.INFO if reason.expected else logging.WARNING
        log.log(level, "websocket closed", extra=fields)
        await self._on_closed(self, reason)
