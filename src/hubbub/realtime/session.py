"""One websocket connection's I/O: a bounded send queue, a writer task, keep-alive, the close
handshake and the close log. What to send and when to close is decided by its `StreamState`
(`realtime/connstate.py`, no I/O).

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
from hubbub.realtime.connstate import ConnState, Refusal, StreamState
from hubbub.realtime.protocol import CloseReason, hello_body
from hubbub.realtime.scope import ChannelView
from hubbub.realtime.transport import FrameLink

log = logging.getLogger("hubbub.realtime")

CHECKPOINT_TIMEOUT = 2.0  # seconds a checkpoint may take before the writer moves on

# Closes for a peer that stopped reading: they must not wait on the paused transport.
_STALLED = {CloseReason.SLOW_CONSUMER, CloseReason.WRITE_TIMEOUT}
_DROPPED = Refusal.DROPPED
_OVERFLOW = Refusal.OVERFLOW
_STALE = Refusal.STALE
_RESYNC = Refusal.RESYNC


@dataclass(frozen=True)
class ConnLimits:
    queue_size: int = 256  # Mattermost's sendQueueSize
    slow_threshold: int = 128  # above this, ephemeral events are dropped
    write_timeout: float = 30.0
    ping_interval: float = 25.0
    pong_timeout: float = 60.0
    auth_timeout: float = 5.0
    # What the client may ask for (hubbub/realtime/limits.py).
    actions_per_second: float = 10.0
    action_burst: int = 50
    typing_interval: float = 1.25  # seconds between typing publishes past a burst; 0: no limit


@dataclass(slots=True)
class ConnInfo:
    """Facts for the close log line."""

    remote: str
    forwarded_for: str
    user_agent: str
    node: str
    client_reported_code: int | None = None


class WebConn:
    """One websocket: the I/O around its `StreamState` (`realtime/connstate.py`), which numbers
    events, holds them while attaching, applies the overflow policy and keeps the resume
    checkpoints.

    Frames are written straight to the transport while it accepts them, as
    `websockets.broadcast()` does; only while it is paused (the peer is not reading) do they
    wait in a bounded queue, drained by a writer task that exists just for that time. An idle
    connection therefore holds no task, no event and no queue.

    The hub records the checkpoints in the connection registry about once a second
    (`take_checkpoints`) and the connection does when the socket closes.
    """

    __slots__ = (
        "__weakref__",
        "_closing_task",
        "_events",
        "_gate",
        "_on_closed",
        "_paused_since",
        "_replies",
        "_send",
        "_skip_gate",
        "_timer",
        "_writer",
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
        "stream",
        "user_id",
        "view",
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
        skip_gate: Callable[[], asyncio.Event] | None = None,
    ) -> None:
        self._send = send
        # In a cluster (`Hub.skip_gate`): after a live event is skipped, the next frames wait
        # until the checkpoint of the skip is recorded (`_gate`), so that a resume on another
        # node, if this one dies, never counts the skipped event and repeats the next one.
        self._skip_gate = skip_gate
        self._gate: asyncio.Event | None = None
        self.link = link
        self.limits = limits
        self.registry = registry
        self.metrics = metrics
        self.info = info
        self.server_version = server_version
        self._on_closed = on_closed
        self.stream = StreamState(limits.queue_size, limits.slow_threshold)
        self.instance_id = new_id()  # this socket, as opposed to the resumable connection id
        self.user_id = ""
        self.session_token = ""
        self.connection_id = ""
        self.opened_at = time.monotonic()
        # What the client has open (`presence` actions); None until it says (realtime/scope.py).
        self.view: ChannelView | None = None
        # Frames waiting for a paused transport (created on first use, dropped when drained).
        self._events: deque[bytes] | None = None
        self._replies: deque[bytes] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing_task: asyncio.Task[None] | None = None
        self._paused_since: float | None = None  # when the writer started waiting on the peer

    # State

    @property
    def state(self) -> ConnState:
        return self.stream.state

    @property
    def close_reason(self) -> CloseReason | None:
        return self.stream.close_reason

    def authenticate(self, user_id: str, token: str) -> None:
        self.user_id = user_id
        self.session_token = token

    def begin(self, seq: int) -> None:
        """The hub starts attaching: the stream continues at `seq`; live events are held."""
        self.stream.begin(seq)

    def release(self, after_pos: int) -> None:
        """The hub attached past log position `after_pos`: held events newer than that go out."""
        for held in self.stream.release(after_pos):
            self.offer(held.pos, held.prefix, held.meta)

    # Sending

    def send_hello(self) -> None:
        body = hello_body(self.connection_id, self.user_id, self.server_version, self.info.node)
        frame = self.stream.hello(body)
        if frame is not None:
            self._write(frame, reply=False)

    def send_reply(self, frame: bytes) -> None:
        if self.stream.may_reply():
            self._write(frame, reply=True)

    def number_replay(self, entries: list[LogEntry]) -> list[bytes]:
        """Numbers missed events for a resume (stale typing and status events are skipped, with a
        checkpoint after each); nothing is written until `send_replay`, so that the hub can
        record the checkpoints first."""
        return self.stream.replay(entries)

    def send_replay(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._write(frame, reply=False)

    def pass_over(self, pos: int, event: str) -> None:
        """A live event left out by this connection's scope (`realtime/scope.py`)."""
        self.stream.pass_over(pos)
        self.metrics.scoped.labels(event).inc()
        self._skipped()

    def _skipped(self) -> None:
        """A live event got no seq: with a skip gate, later frames wait for its checkpoint."""
        if self._skip_gate is not None and self._gate is None:
            self._gate = self._skip_gate()

    def offer(self, pos: int, prefix: bytes, meta: EventMeta) -> bool:
        """Sends a live event at log position `pos` (`prefix` from `event_prefix`); the hub calls
        this for each connection of each recipient. True when it was sent or queued.

        The hot path of fan-out: `_write` is inlined here."""
        events = self._events
        frame = self.stream.offer(pos, prefix, meta, len(events) if events else 0)
        if frame:
            if (
                self._writer is not None
                or self._gate is not None
                or not self.link.write_text(frame)
            ):
                self._queue(frame, reply=False)
            return True
        if frame is _DROPPED:
            self.metrics.dropped.labels(meta.event).inc()
            self._skipped()
        elif frame is _OVERFLOW:
            self.close_soon(CloseReason.SLOW_CONSUMER)
        elif frame is _STALE:
            self.metrics.stale.inc()
            self._skipped()
        elif frame is _RESYNC:
            self.metrics.late_resyncs.inc()
            self.restart_soon()
        return False

    def restart_soon(self) -> None:
        """Ends this connection so that the client starts over with a fresh hello (and
        refetches): its record is forgotten first, so a resume attempt cannot continue it."""
        if self._closing_task is None and not self.stream.ending:
            self._closing_task = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await asyncio.wait_for(self.registry.forget(self.connection_id), CHECKPOINT_TIMEOUT)
        except Exception as exc:
            # The resume replay meets the same late entry and refuses too.
            log.warning(
                "could not forget a connection to restart it",
                extra={"connection_id": self.connection_id, "error": repr(exc)},
            )
        await self.close(CloseReason.RESYNC)

    def _write(self, frame: bytes, reply: bool) -> None:
        """Writes at once unless frames wait for the transport or a skip's checkpoint (or the
        transport cannot take one now)."""
        if self._writer is not None or self._gate is not None or not self.link.write_text(frame):
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
        stream = self.stream
        loop = asyncio.get_running_loop()
        try:
            while not stream.silenced:
                gate = self._gate
                if gate is not None:
                    await gate.wait()  # the checkpoint of a skipped event is recorded
                    if self._gate is gate:
                        self._gate = None
                    continue
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
        return self.stream.take_checkpoints()

    def checkpoints_failed(self, checkpoints: list[Checkpoint], exc: BaseException) -> None:
        """Puts checkpoints that could not be recorded back, to be retried with the next ones.
        Meanwhile a resume on another node walks from an older checkpoint: exact unless a skip
        happened since; if this socket closes first, the hub keeps them (`Hub._keep_orphans`)
        and refuses to resume it here until they are recorded."""
        if self.stream.checkpoints_failed(checkpoints):
            log.warning(
                "could not record a websocket checkpoint; retrying",
                extra={"connection_id": self.connection_id, "error": repr(exc)},
            )

    def checkpoints_recorded(self) -> None:
        self.stream.checkpoints_recorded()

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
        if self.stream.ending:
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
            if self.stream.state is ConnState.AWAITING_AUTH:
                self.close_soon(CloseReason.AUTH_FAILED)

        self._timer = loop.call_later(self.limits.auth_timeout, expire)

    def since_last_frame(self) -> float:
        return asyncio.get_running_loop().time() - self.link.last_frame_at

    # Closing

    def silence(self) -> None:
        """Stops all writing at once (a resumed connection is taking this one over)."""
        self.stream.silence()
        self._events = None
        self._replies = None
        if self._writer is not None:
            self._writer.cancel()

    def close_soon(self, reason: CloseReason) -> None:
        if self._closing_task is None and not self.stream.ending:
            self._closing_task = asyncio.get_running_loop().create_task(self.close(reason))

    async def close(self, reason: CloseReason, code: int | None = None) -> None:
        """Closes from the server side with the code for `reason`."""
        code = self.stream.close(reason, code)
        if code is None:
            return
        if reason is CloseReason.REPLACED:
            self.silence()
            self.link.abort()
        elif reason in _STALLED:
            # The peer is not reading, so the transport is paused for flow control and a close
            # sent through ASGI would wait for it forever. Put the close frame behind what is
            # already buffered, write nothing more, and drop the connection if the peer has not
            # read up to it within the write timeout.
            self.silence()
            self.link.send_close(code)
            asyncio.get_running_loop().call_later(self.limits.write_timeout, self.link.abort)
        else:
            # Frames still queued for a paused transport go first: uvicorn's close waits for
            # the transport too, and the writer, waiting longer, is woken first.
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": code})
            if reason is CloseReason.READ_TIMEOUT:
                self.link.abort()
        await self.finish(reason, code)

    async def finish(self, reason: CloseReason, code: int) -> None:
        """Final bookkeeping, exactly once per connection."""
        if not self.stream.finish():
            return
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
            "seq": self.stream.seq,
        }
        if self.info.client_reported_code is not None:
            fields["client_reported_code"] = self.info.client_reported_code
        level = logging.INFO if reason.expected else logging.WARNING
        log.log(level, "websocket closed", extra=fields)
        await self._on_closed(self, reason)
