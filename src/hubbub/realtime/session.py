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
from hubbub.cluster.eventlog import LogEntry
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
CHECKPOINT_RETRY = 1.0  # seconds before retrying checkpoints after a registry failure

# Closes for a peer that stopped reading: they must not wait on the paused transport.
_STALLED = {CloseReason.SLOW_CONSUMER, CloseReason.WRITE_TIMEOUT}


@dataclass(frozen=True)
class ConnLimits:
    queue_size: int = 256  # Mattermost's sendQueueSize
    slow_threshold: int = 128  # above this, ephemeral events are dropped
    write_timeout: float = 30.0
    ping_interval: float = 25.0
    pong_timeout: float = 60.0
    auth_timeout: float = 5.0


@dataclass
class ConnInfo:
    """Facts for the close log line."""

    remote: str
    forwarded_for: str
    user_agent: str
    node: str
    client_reported_code: int | None = None


class WebConn:
    def __init__(
        self,
        send: Send,
        link: FrameLink | None,
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
        self._held: list[tuple[LogEntry, str]] = []
        self._events: deque[str] = deque()
        self._replies: deque[str] = deque()
        self._wake = asyncio.Event()
        # Checkpoints not yet recorded in the registry, oldest first; True marks one taken right
        # after a dropped event, which must be recorded (a later one does not replace it).
        self._checkpoints: deque[tuple[Checkpoint, bool]] = deque(maxlen=64)
        self._checkpoint_retry_at = 0.0
        self._checkpoint_failing = False
        self._silenced = False
        self._close_reason: CloseReason | None = None
        self._close_code: int | None = None
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing_task: asyncio.Task[None] | None = None
        self._write_since: float | None = None  # when the write in progress started

    # State

    def _set_state(self, new: ConnState) -> None:
        check_transition(self.state, new)
        self.state = new

    def authenticate(self, user_id: str, token: str) -> None:
        self.user_id = user_id
        self.session_token = token

    def begin(self, seq: int, holding: bool) -> None:
        """Opens the stream at `seq`; while holding, live entries wait for `release`."""
        if self.state is ConnState.AWAITING_AUTH:
            self._set_state(ConnState.OPEN)
        self._seq = seq
        self._holding = holding
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def release(self, after_pos: int) -> None:
        self._last_pos = max(self._last_pos, after_pos)
        self._holding = False
        held, self._held = self._held, []
        for entry, text in held:
            self.offer(entry, text)

    # Queueing

    def send_hello(self) -> None:
        body = hello_body(self.connection_id, self.user_id, self.server_version, self.info.node)
        self._events.append(stamp(body, self._seq).decode())
        self._seq += 1
        self._wake.set()

    def send_reply(self, frame: bytes) -> None:
        if self.state in (ConnState.CLOSING, ConnState.CLOSED) or self._silenced:
            return
        self._replies.append(frame.decode())
        if self._writer is None:
            # Not authenticated yet (e.g. the 401 reply to a request before the challenge):
            # replies must go out all the same.
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._wake.set()

    def replay(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self._enqueue(entry, entry.payload.decode())

    def offer(self, entry: LogEntry, text: str) -> None:
        """Queues a live entry (called by the hub for each entry of this user)."""
        if self._holding:
            self._held.append((entry, text))
            return
        if entry.pos <= self._last_pos or self.state is not ConnState.OPEN or self._silenced:
            return
        backlog = len(self._events)
        if backlog >= self.limits.slow_threshold and entry.meta.ephemeral:
            self.metrics.dropped.labels(entry.meta.event).inc()
            self._last_pos = entry.pos
            # A drop breaks the seq/position correspondence: checkpoint right after it.
            self._note_checkpoint(Checkpoint(self._seq - 1, entry.pos), after_drop=True)
            self._wake.set()
            return
        if backlog >= self.limits.queue_size:
            self.close_soon(CloseReason.SLOW_CONSUMER)
            return
        self._enqueue(entry, text)

    def _enqueue(self, entry: LogEntry, text: str) -> None:
        self._events.append(f'{text[:-1]},"seq":{self._seq}}}')
        self._note_checkpoint(Checkpoint(self._seq, entry.pos), after_drop=False)
        self._seq += 1
        self._last_pos = max(self._last_pos, entry.pos)
        self.metrics.broadcast(entry.meta.event).inc()
        self._wake.set()

    # Writing

    def _note_checkpoint(self, cp: Checkpoint, after_drop: bool) -> None:
        if self._checkpoints and not self._checkpoints[-1][1]:
            # A newer position supersedes an ordinary checkpoint not recorded yet.
            self._checkpoints[-1] = (cp, after_drop)
        else:
            self._checkpoints.append((cp, after_drop))

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                loop = asyncio.get_running_loop()
                while (self._replies or self._events) and not self._silenced:
                    frame = self._replies.popleft() if self._replies else self._events.popleft()
                    # No per-frame timer: the keep-alive tick checks how long a write is stuck.
                    self._write_since = loop.time()
                    await self._send({"type": "websocket.send", "text": frame})
                    self._write_since = None
                if (
                    self._checkpoints
                    and not self._silenced
                    and loop.time() >= self._checkpoint_retry_at
                ):
                    await self._record_checkpoints()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer went away while we wrote; the reader sees the disconnect and logs it.
            pass

    async def _record_checkpoints(self) -> None:
        """Records pending checkpoints in order. A registry that fails (Redis restarting, a
        stale pooled connection) must not stop the writer: the connection keeps delivering
        and the checkpoints are retried a second later (until then a resume walks from an
        older checkpoint, which is still exact)."""
        loop = asyncio.get_running_loop()
        while self._checkpoints and not self._silenced:
            cp, _ = self._checkpoints[0]
            try:
                await asyncio.wait_for(
                    self.registry.checkpoint(self.connection_id, cp), CHECKPOINT_TIMEOUT
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._checkpoint_failing:
                    log.warning(
                        "could not record a websocket checkpoint; retrying",
                        extra={"connection_id": self.connection_id, "error": repr(exc)},
                    )
                self._checkpoint_failing = True
                self._checkpoint_retry_at = loop.time() + CHECKPOINT_RETRY
                loop.call_later(CHECKPOINT_RETRY, self._wake.set)
                return
            if self._checkpoints and self._checkpoints[0][0] is cp:
                self._checkpoints.popleft()
        self._checkpoint_failing = False

    # Keep-alive

    def start_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.limits.ping_interval, self._keepalive)

    def _keepalive(self) -> None:
        if self.state in (ConnState.CLOSING, ConnState.CLOSED) or self.link is None:
            return
        loop = asyncio.get_running_loop()
        if (
            self._write_since is not None
            and loop.time() - self._write_since >= self.limits.write_timeout
        ):
            self.close_soon(CloseReason.WRITE_TIMEOUT)
            return
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
        if self.link is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.link.last_frame_at

    # Closing

    def silence(self) -> None:
        """Stops all writing at once (a resumed connection is taking this one over)."""
        self._silenced = True
        self._events.clear()
        self._replies.clear()
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
        if reason is CloseReason.REPLACED and self.link is not None:
            self.silence()
            self.link.abort()
        elif reason in _STALLED and self.link is not None:
            # The peer is not reading, so the transport is paused for flow control and a close
            # sent through ASGI would wait for it forever. Put the close frame behind what is
            # already buffered, write nothing more, and drop the connection if the peer has not
            # read up to it within the write timeout.
            self.silence()
            self.link.send_close(self._close_code)
            asyncio.get_running_loop().call_later(self.limits.write_timeout, self.link.abort)
        else:
            if self._writer is not None and not self._silenced:
                # Let queued frames go out first (e.g. a drain closes after the last event).
                self._wake.set()
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": self._close_code})
            if reason is CloseReason.READ_TIMEOUT and self.link:
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
