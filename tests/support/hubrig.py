"""The hub without sockets: `Socket` stands in for a FrameLink and collects the frames written
to it; `Rig` is a hub on the in-memory event log and connection registry that builds connections
on such sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from hubbub.cluster.bus import MemoryBus
from hubbub.cluster.connections import MemoryConnectionRegistry
from hubbub.cluster.eventlog import EventLog, EventMeta, MemoryEventLog
from hubbub.observability.metrics import Metrics
from hubbub.realtime.hub import CHECKPOINT_INTERVAL, Hub
from hubbub.realtime.protocol import CloseReason, encode_event_body
from hubbub.realtime.session import ConnInfo, ConnLimits, WebConn
from tests.support.wait import wait_until_async


class Socket:
    """A FrameLink stand-in that collects frames; after `block_after` frames it pauses like a
    transport whose peer stopped reading, until `gate` is set."""

    def __init__(self, block_after: int | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.block_after = block_after
        self.gate = asyncio.Event()
        self.gate.set()
        self.last_frame_at = 0.0
        self.got_close_frame = False
        self.close_frame_code: int | None = None
        self.aborted = False
        self.pings = 0

    # The ASGI side: only the close goes through it.
    async def send(self, message: dict[str, Any]) -> None:
        assert message["type"] == "websocket.close", message
        await self.gate.wait()
        self.closed_with = message["code"]

    # The FrameLink side.
    def can_write(self) -> bool:
        return self.gate.is_set() and not self.closed()

    def closed(self) -> bool:
        return self.closed_with is not None or self.aborted

    async def wait_writable(self) -> None:
        await self.gate.wait()

    def write_text(self, payload: bytes) -> bool:
        if not self.can_write():
            return False  # as FrameLink: nothing is written to a paused or closed socket
        self.frames.append(orjson.loads(payload))
        if self.block_after is not None and len(self.frames) >= self.block_after:
            self.gate.clear()
            self.block_after = None
        return True

    def send_close(self, code: int) -> None:
        self.closed_with = code

    def send_ping(self) -> None:
        self.pings += 1

    def abort(self) -> None:
        self.aborted = True

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f]


class Rig:
    def __init__(
        self,
        registry: MemoryConnectionRegistry | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        log: EventLog | None = None,
    ) -> None:
        self.log = log or MemoryEventLog()
        self.registry = registry or MemoryConnectionRegistry()
        self.metrics = Metrics()
        self.hub = Hub(self.log, self.registry, self.metrics, MemoryBus(), checkpoint_interval)

    def conn(
        self,
        socket: Socket,
        limits: ConnLimits | None = None,
        skip_gate: Callable[[], asyncio.Event] | None = None,
    ) -> WebConn:
        async def closed(conn: WebConn, reason: CloseReason) -> None:
            self.hub.remove(conn)
            if reason is not CloseReason.REPLACED:
                await self.registry.detach(conn.connection_id)

        conn = WebConn(
            socket.send,
            socket,
            limits or ConnLimits(),
            self.registry,
            self.metrics,
            ConnInfo("127.0.0.1:1", "", "test", "node"),
            "9.11.0",
            closed,
            skip_gate=skip_gate,
        )
        conn.authenticate("u1", "token")
        return conn

    async def post(self, n: int, ephemeral: bool = False, user: str = "u1") -> None:
        name = "typing" if ephemeral else "posted"
        body = encode_event_body(name, {"n": n}, {"channel_id": "c"})
        await self.log.append([user], body, EventMeta(name, ephemeral=ephemeral))

    def count(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "mattermost_websocket_reconnects_total", {"type": kind}
        )
        return value or 0.0


async def settle(check: Callable[[], object], timeout: float = 2.0) -> None:
    """Lets the hub's tasks run until `check` holds.

    The polling runs in a task of its own, so the caller resumes a loop iteration after `check`
    held: what the hub queued in that same tick (a flush after a recovery) has run by then, and
    the hub tests read state right after settling."""
    await asyncio.create_task(wait_until_async(check, timeout, "the hub to settle", interval=0.001))
