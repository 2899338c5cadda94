"""Hub delivery and resume without sockets: WebConns write into lists instead of websockets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from hubbub.cluster.connections import MemoryConnectionRegistry
from hubbub.cluster.eventlog import EventMeta, MemoryEventLog
from hubbub.observability.metrics import Metrics
from hubbub.realtime.hub import CHECKPOINT_INTERVAL, Hub
from hubbub.realtime.protocol import CloseReason, encode_event_body
from hubbub.realtime.session import ConnInfo, ConnLimits, WebConn


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
    ) -> None:
        self.log = MemoryEventLog()
        self.registry = registry or MemoryConnectionRegistry()
        self.metrics = Metrics()
        self.hub = Hub(self.log, self.registry, self.metrics, checkpoint_interval)

    def conn(self, socket: Socket, limits: ConnLimits | None = None) -> WebConn:
        async def closed(conn: WebConn, reason: CloseReason) -> None:
            self.hub.remove(conn)
            if reason is not CloseReason.REPLACED:
                await self.registry.detach(conn.connection_id)

        conn = WebConn(
            socket.send,
            socket,  # type: ignore[arg-type]
            limits or ConnLimits(),
            self.registry,
            self.metrics,
            ConnInfo("127.0.0.1:1", "", "test", "node"),
            "9.11.0",
            closed,
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


async def settle(check: Any, timeout: float = 2.0) -> None:
    async def loop() -> None:
        while not check():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(loop(), timeout)


async def test_fresh_connection_gets_hello_then_gap_free_events() -> None:
    rig = Rig()
    sock = Socket()
    conn = rig.conn(sock)
    result = await rig.hub.attach(conn, "", None)
    assert not result.resumed and len(result.connection_id) == 26
    for i in range(5):
        await rig.post(i)
    await settle(lambda: len(sock.events()) == 6)
    assert [e["seq"] for e in sock.events()] == [0, 1, 2, 3, 4, 5]
    assert sock.events()[0]["event"] == "hello"
    assert [e["data"]["n"] for e in sock.events()[1:]] == [0, 1, 2, 3, 4]


async def test_resume_replays_exactly_the_missed_events_without_hello() -> None:
    rig = Rig()
    first = Socket()
    conn = rig.conn(first)
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    for i in range(3):
        await rig.post(i)
    await settle(lambda: len(first.events()) == 4)
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
    for i in range(3, 7):
        await rig.post(i)
    second = Socket()
    result = await rig.hub.attach(rig.conn(second), cid, 4)
    assert result.resumed and result.connection_id == cid and result.outcome == "success"
    await rig.post(7)
    await settle(lambda: len(second.events()) == 5)
    assert [e["seq"] for e in second.events()] == [4, 5, 6, 7, 8]
    assert [e["data"]["n"] for e in second.events()] == [3, 4, 5, 6, 7]
    assert rig.count("success") == 1


async def test_resume_from_before_the_last_written_event() -> None:
    """Frames written just before a cut may never reach the client: replay from its seq."""
    rig = Rig()
    first = Socket()
    conn = rig.conn(first)
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    for i in range(6):
        await rig.post(i)
    await settle(lambda: len(first.events()) == 7)
    await conn.finish(CloseReason.PROXY_IDLE_SUSPECTED, 1006)
    second = Socket()
    result = await rig.hub.attach(rig.conn(second), cid, 3)  # client saw seq 0..2 only
    assert result.resumed
    await settle(lambda: len(second.events()) == 4)
    assert [e["seq"] for e in second.events()] == [3, 4, 5, 6]
    assert [e["data"]["n"] for e in second.events()] == [2, 3, 4, 5]


async def test_lossless_resume_and_unknown_connection_get_outcomes() -> None:
    rig = Rig()
    first = Socket()
    conn = rig.conn(first)
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    await rig.post(0)
    await settle(lambda: len(first.events()) == 2)
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
    result = await rig.hub.attach(rig.conn(Socket()), cid, 2)
    assert result.resumed and result.outcome == "lossless"
    unknown = Socket()
    result = await rig.hub.attach(rig.conn(unknown), "x" * 26, 5)
    assert not result.resumed and result.connection_id != "x" * 26
    await settle(lambda: len(unknown.events()) == 1)
    assert unknown.events()[0]["event"] == "hello" and unknown.events()[0]["seq"] == 0
    assert rig.count("failure") == 1 and rig.count("lossless") == 1


async def test_sequence_the_server_never_sent_gets_a_new_connection() -> None:
    rig = Rig()
    conn = rig.conn(Socket())
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
    fresh = Socket()
    result = await rig.hub.attach(rig.conn(fresh), cid, 50)
    assert not result.resumed and result.connection_id != cid
    await settle(lambda: len(fresh.events()) == 1)
    assert fresh.events()[0]["event"] == "hello"


async def test_truncated_log_cannot_resume() -> None:
    rig = Rig()
    rig.log = MemoryEventLog(min_events=3, min_age_seconds=0, max_events=3)
    rig.hub = Hub(rig.log, rig.registry, rig.metrics)
    conn = rig.conn(Socket())
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
    for i in range(10):
        await rig.post(i)
    result = await rig.hub.attach(rig.conn(Socket()), cid, 1)
    assert not result.resumed and result.outcome == "failure"


async def test_takeover_silences_the_old_socket() -> None:
    rig = Rig()
    old = Socket()
    conn = rig.conn(old)
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    await rig.post(0)
    await settle(lambda: len(old.events()) == 2)
    new = Socket()
    result = await rig.hub.attach(rig.conn(new), cid, 2)
    assert result.resumed
    await rig.post(1)
    await settle(lambda: len(new.events()) == 1)
    assert [e["seq"] for e in new.events()] == [2]
    assert len(old.events()) == 2  # not one more frame on the old socket
    assert rig.hub.count() == 1


async def test_slow_consumer_drops_ephemeral_then_closes_and_resume_stays_exact() -> None:
    rig = Rig()
    limits = ConnLimits(queue_size=8, slow_threshold=4)
    stalled = Socket(block_after=1)  # the hello goes out, then the peer stops reading
    conn = rig.conn(stalled, limits)
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    await settle(lambda: len(stalled.events()) == 1)
    for i in range(5):
        await rig.post(i)
    for i in range(3):
        await rig.post(100 + i, ephemeral=True)  # dropped: backlog is above the threshold
    dropped = rig.metrics.registry.get_sample_value(
        "hubbub_websocket_dropped_events_total", {"event": "typing"}
    )
    assert dropped == 3
    for i in range(5, 12):
        await rig.post(i)  # overflows the queue of 8
    await settle(lambda: stalled.closed_with is not None)
    assert all(e["data"].get("n", 0) < 100 for e in stalled.events()[1:])
    assert stalled.closed_with == 1013
    stalled.gate.set()
    await settle(lambda: conn.state.value == "closed")
    seen = [e["seq"] for e in stalled.events()]
    # Resume from whatever the client got: every non-dropped event arrives exactly once.
    second = Socket()
    result = await rig.hub.attach(rig.conn(second), cid, (seen[-1] + 1) if seen else 1)
    assert result.resumed
    await settle(lambda: any(e["data"].get("n") == 11 for e in second.events()))
    got = [e["data"]["n"] for e in stalled.events()[1:] + second.events()]
    assert got == list(range(12))
    seqs = [e["seq"] for e in stalled.events() + second.events()]
    assert seqs == list(range(len(seqs)))
