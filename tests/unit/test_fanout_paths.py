"""The realtime fan-out paths without sockets: direct writes while the link accepts them, the
queue and writer task only while it is paused, the write timeout, resume checkpoints (including
the must-record ones after skipped events), resume across many reconnects and takeovers, and the
transport's own framing, inbox and writable flag."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hubbub.cluster.connections import Checkpoint, MemoryConnectionRegistry
from hubbub.cluster.eventlog import Delivery, EventMeta, MemoryEventLog
from hubbub.realtime.connstate import ConnState
from hubbub.realtime.protocol import CloseReason, reply
from hubbub.realtime.session import ConnLimits, WebConn
from hubbub.realtime.transport import FrameLink, _Flag, _Inbox
from tests.support.hubrig import Rig, Socket, settle


def cps(*pairs: tuple[int, int]) -> list[Checkpoint]:
    return [Checkpoint(seq, pos) for seq, pos in pairs]


def numbers(sock: Socket) -> list[int]:
    return [e["data"]["n"] for e in sock.events() if e["event"] != "hello"]


async def send(rig: Rig, *ns: int) -> None:
    """Posts one event per n at the user's next positions; n >= 100 is typing (ephemeral)."""
    for n in ns:
        await rig.post(n, ephemeral=n >= 100)


async def fresh(rig: Rig, sock: Socket, limits: ConnLimits | None = None) -> tuple[WebConn, str]:
    conn = rig.conn(sock, limits)
    return conn, (await rig.hub.attach(conn, "", None)).connection_id


async def recorded(rig: Rig, connection_id: str) -> list[Checkpoint]:
    record = await rig.registry.get(connection_id)
    assert record is not None
    return list(record.checkpoints)


class FlakyRegistry(MemoryConnectionRegistry):
    """Keeps every checkpoint batch; raises while `failing`, like an unreachable Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.failures = 0
        self.batches: list[dict[str, list[Checkpoint]]] = []
        self.refused: list[Checkpoint] = []  # every checkpoint of every failed batch

    async def checkpoint_many(self, items: list[tuple[str, list[Checkpoint]]]) -> None:
        if self.failing:
            self.failures += 1
            self.refused.extend(cp for _, cps in items for cp in cps)
            raise ConnectionError("registry unavailable")
        self.batches.append({cid: list(c) for cid, c in items})
        await super().checkpoint_many(items)


async def test_frames_go_out_synchronously_while_the_link_accepts_them() -> None:
    rig = Rig()
    sock = Socket()
    conn, _ = await fresh(rig, sock)
    for i in range(3):
        await rig.post(i)
        # No settling: the frame is on the link when the append returns.
        assert sock.frames[-1]["data"] == {"n": i} and sock.frames[-1]["seq"] == i + 1
        assert conn._writer is None and conn._events is None
    conn.send_reply(reply(7))
    assert sock.frames[-1] == {"status": "OK", "seq_reply": 7}
    assert conn._writer is None and conn._replies is None


async def test_paused_link_queues_in_order_and_replies_overtake_queued_events() -> None:
    rig = Rig()
    sock = Socket(block_after=1)  # the hello goes out, then the peer stops reading
    conn, _ = await fresh(rig, sock)
    for i in range(3):
        await rig.post(i)
    conn.send_reply(reply(1))
    await rig.post(3)
    conn.send_reply(reply(2))
    await settle(lambda: conn._paused_since is not None)  # the writer waits for the link
    assert len(sock.frames) == 1  # nothing reached the paused socket
    assert conn.queued() == 4 and conn._replies is not None and len(conn._replies) == 2
    sock.gate.set()
    await settle(lambda: conn._writer is None)
    assert sock.frames[1:3] == [{"status": "OK", "seq_reply": 1}, {"status": "OK", "seq_reply": 2}]
    assert [(f["seq"], f["data"]["n"]) for f in sock.frames[3:]] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert conn._events is None and conn._replies is None and conn._paused_since is None
    await rig.post(4)  # drained: direct again
    assert sock.frames[-1]["seq"] == 5 and conn._writer is None


async def next_ping(sock: Socket) -> None:
    target = sock.pings + 1
    await settle(lambda: sock.pings >= target)


async def test_keepalive_ticks_do_not_close_a_link_that_accepts_writes() -> None:
    rig = Rig()
    sock = Socket()
    sock.last_frame_at = asyncio.get_running_loop().time()
    conn, _ = await fresh(rig, sock, ConnLimits(ping_interval=0.005, write_timeout=0.02))
    conn.start_keepalive()
    for i in range(3):  # ticks are at least 50 ms apart: well past the write timeout
        await next_ping(sock)
        await rig.post(i)
    assert conn.state is ConnState.OPEN and len(sock.events()) == 4
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)


async def test_link_paused_past_the_write_timeout_is_closed() -> None:
    rig = Rig()
    sock = Socket(block_after=1)
    sock.last_frame_at = asyncio.get_running_loop().time()
    # Pings are far apart: the write timeout has a timer of its own while the link is paused.
    conn, _ = await fresh(rig, sock, ConnLimits(ping_interval=60, write_timeout=0.03))
    conn.start_keepalive()
    await rig.post(0)
    await settle(lambda: conn._paused_since is not None)
    paused_at = conn._paused_since
    assert paused_at is not None
    await settle(lambda: conn.state is not ConnState.OPEN)
    assert asyncio.get_running_loop().time() - paused_at >= 0.03  # not before the timeout
    await settle(lambda: rig.hub.count() == 0)  # on_closed: the last step of the close
    assert conn.state is ConnState.CLOSED and conn.close_reason is CloseReason.WRITE_TIMEOUT
    assert sock.closed_with == 1013
    metric = rig.metrics.registry.get_sample_value(
        "hubbub_websocket_disconnects_total", {"reason": "write_timeout"}
    )
    assert metric == 1 and conn._writer is None
    await settle(lambda: sock.aborted)  # the peer never read up to the close frame


async def test_take_checkpoints_returns_the_newest_once() -> None:
    rig = Rig()
    conn, _ = await fresh(rig, Socket())
    assert conn.take_checkpoints() == []  # the attach recorded (0, head) itself
    await rig.post(0)
    assert conn.take_checkpoints() == cps((1, 1))
    assert conn.take_checkpoints() == []
    await rig.post(1)
    await rig.post(2)
    assert conn.take_checkpoints() == cps((3, 3))
    assert conn.take_checkpoints() == []


async def test_drop_checkpoints_are_all_returned_in_order_and_not_superseded() -> None:
    rig = Rig()
    sock = Socket(block_after=1)
    conn, _ = await fresh(rig, sock, ConnLimits(slow_threshold=2))
    # Positions 1..7; with 2 queued, typing is dropped: 100 -> (2, 3); 101, 102 -> (3, 6).
    await send(rig, 0, 1, 100, 2, 101, 102, 3)
    assert conn.take_checkpoints() == cps((2, 3), (3, 6), (4, 7))
    assert conn.take_checkpoints() == []
    await send(rig, 103)  # pos 8 dropped
    assert conn.take_checkpoints() == cps((4, 8))
    sock.gate.set()
    await settle(lambda: conn._writer is None)
    assert numbers(sock) == [0, 1, 2, 3] and [e["seq"] for e in sock.events()] == [0, 1, 2, 3, 4]


async def test_replay_skips_of_stale_ephemeral_events_are_recorded_with_the_resume() -> None:
    rig = Rig()
    first, cid = await fresh(rig, Socket())
    await first.finish(CloseReason.CLIENT_CLOSE, 1000)
    # Replayed after seq 0: 0 and 1 get seqs 1 and 2 (positions 2 and 5); typing is skipped.
    await send(rig, 100, 0, 101, 102, 1, 103)
    sock = Socket()
    conn = rig.conn(sock)
    result = await rig.hub.attach(conn, cid, 1)
    assert result.resumed and result.replayed == 2 and numbers(sock) == [0, 1]
    # Recorded with the resumed record itself, before the replay was written (after the resume
    # checkpoint (0, 0)): nothing is left for the checkpoint loop.
    record = await rig.registry.get(cid)
    assert record is not None
    assert record.checkpoints[-3:] == cps((0, 1), (1, 4), (2, 6))
    assert conn.take_checkpoints() == []


async def test_failed_checkpoints_go_back_ahead_of_newer_ones() -> None:
    rig = Rig()
    conn, _ = await fresh(rig, Socket(block_after=1), ConnLimits(slow_threshold=1))
    await send(rig, 0, 100, 1)  # 100 at position 2 is dropped
    taken = conn.take_checkpoints()
    assert taken == cps((1, 2), (2, 3))
    conn.checkpoints_failed(taken, ConnectionError("down"))
    await send(rig, 101, 2)  # (2, 4) after the drop, then seq 3 at position 5
    assert conn.take_checkpoints() == cps((1, 2), (2, 4), (3, 5))


async def test_hub_flush_records_every_connection_in_one_batch() -> None:
    registry = FlakyRegistry()
    rig = Rig(registry=registry)
    _, cid_a = await fresh(rig, Socket())
    _, cid_b = await fresh(rig, Socket())
    await send(rig, 0, 1)
    await rig.hub.flush_checkpoints()
    assert registry.batches == [{cid_a: cps((2, 2)), cid_b: cps((2, 2))}]
    assert await recorded(rig, cid_a) == cps((0, 0), (2, 2))
    await rig.hub.flush_checkpoints()  # nothing new: no round trip
    assert len(registry.batches) == 1


async def test_failing_registry_does_not_stop_delivery_and_the_next_flush_records_all() -> None:
    registry = FlakyRegistry()
    rig = Rig(registry=registry, checkpoint_interval=0.002)
    sock = Socket(block_after=1)
    conn, cid = await fresh(rig, sock, ConnLimits(slow_threshold=1))
    registry.failing = True
    await rig.hub.start()
    try:
        await send(rig, 0, 100, 1)  # (1, 2) after the drop, then (2, 3)
        await settle(lambda: registry.failures > 0 and conn.stream.checkpoint_failing)
        await conn.flush_checkpoints()  # the close path fails the same way
        await send(rig, 101, 2)  # (2, 4) after the drop, then (3, 5)
        # (3, 5) failed too (a batch taken before it was offered does not count).
        await settle(lambda: Checkpoint(3, 5) in registry.refused)
        sock.gate.set()
        await settle(lambda: conn._writer is None)
        assert [e["seq"] for e in sock.events()] == [0, 1, 2, 3] and numbers(sock) == [0, 1, 2]
        await rig.post(3)  # pos 6, seq 4, straight to the link
        assert numbers(sock)[-1] == 3
        assert await recorded(rig, cid) == cps((0, 0))
        registry.failing = False
        await settle(lambda: not conn.stream.checkpoint_failing)
        assert await recorded(rig, cid) == cps((0, 0), (1, 2), (2, 4), (3, 5), (4, 6))
    finally:
        await rig.hub.stop()


@dataclass(frozen=True)
class Round:
    live: tuple[bool, ...] = ()  # events while attached; True is an ephemeral (typing) event
    reads: int | None = None  # the peer stops reading after this many frames on its socket
    flush_after: int | None = None  # the hub's checkpoint batch runs before this live event
    offline: tuple[bool, ...] = ()  # events after the round: closed, or still attached
    takeover: bool = False  # the next resume arrives while this socket is still attached


def check_stream(got: list[dict[str, Any]], posted: list[tuple[int, bool]], done: bool) -> None:
    assert [e["seq"] for e in got] == list(range(len(got))), "seqs have a gap or repeat"
    assert got[0]["event"] == "hello"
    received = [e["data"]["n"] for e in got[1:]]
    assert received == sorted(set(received)), f"duplicate or reordered events: {received}"
    ephemeral = {n for n, eph in posted if eph}
    durable = [n for n in received if n not in ephemeral]
    wanted = [n for n, eph in posted if not eph]
    assert durable == (wanted if done else wanted[: len(durable)]), (durable, wanted)


async def run_rounds(rounds: Sequence[Round]) -> None:
    """The client attaches, then in each round resumes from the last seq it got; a final resume
    on a reading socket must complete the stream."""
    rig = Rig()
    limits = ConnLimits(queue_size=64, slow_threshold=3)
    posted: list[tuple[int, bool]] = []
    got: list[dict[str, Any]] = []
    cid = ""
    old: tuple[Socket, int] | None = None  # a socket taken over, and its frame count

    async def post(kinds: Sequence[bool]) -> None:
        for ephemeral in kinds:
            await rig.post(len(posted), ephemeral=ephemeral)
            posted.append((len(posted), ephemeral))

    for number, rnd in enumerate([*rounds, Round()]):
        sock = Socket(block_after=rnd.reads)
        conn = rig.conn(sock, limits)
        if not cid:
            cid = (await rig.hub.attach(conn, "", None)).connection_id
        else:
            result = await rig.hub.attach(conn, cid, got[-1]["seq"] + 1)
            assert result.resumed, f"round {number}: {result}"
        for i, ephemeral in enumerate(rnd.live):
            if rnd.flush_after == i:
                await rig.hub.flush_checkpoints()
            await post([ephemeral])
        if old is not None:
            assert len(old[0].frames) == old[1], "a taken-over socket got a frame"
        if not rnd.takeover:
            await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
        await post(rnd.offline)
        got += sock.events()
        old = (sock, len(sock.frames)) if rnd.takeover else None
        check_stream(got, posted, done=number == len(rounds))


# Each round's comment: what the client got, and what that connection sent it never got.
REGRESSION = [
    # hello, 0, 1; 2 (typing) and 3 queued with seqs 3 and 4 but never read
    Round(live=(False, False, True, False), reads=3, offline=(True, False)),
    # resumes at 3: 3 and 5 replayed (2 and 4 skipped); 6, 7, 8 queued, unread
    Round(live=(False, True, False), reads=2, offline=(True,)),
    # resumes at 5: must get 6, 8 (not 5 again); live typing reaches it; still attached
    Round(live=(True, False, True, False), flush_after=2, offline=(False,), takeover=True),
    Round(live=(False, False, True), reads=1, offline=(True, True, False)),
    Round(live=(), offline=(True,), takeover=True),
    Round(live=(True, True, True, False, False), reads=2, flush_after=0, offline=(False, True)),
]


async def test_repeated_resumes_get_exactly_the_missed_events() -> None:
    await run_rounds(REGRESSION)


kinds = st.lists(st.booleans(), max_size=5).map(tuple)
round_plans = st.builds(
    Round,
    live=kinds,
    reads=st.one_of(st.none(), st.integers(1, 4)),
    flush_after=st.one_of(st.none(), st.integers(0, 4)),
    offline=kinds,
    takeover=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(round_plans, min_size=5, max_size=8))
def test_any_resume_pattern_gets_exactly_the_missed_events(plan: list[Round]) -> None:
    note(f"plan={plan!r}")
    asyncio.run(run_rounds(plan))


async def test_takeover_resumes_from_what_the_old_socket_was_sent_before_any_flush() -> None:
    rig = Rig()
    old = Socket(block_after=1)
    conn, cid = await fresh(rig, old, ConnLimits(slow_threshold=2))
    await send(rig, 0, 1, 100, 101, 2)  # 100, 101 dropped: only the unflushed checkpoint knows
    old.gate.set()
    await settle(lambda: conn._writer is None)
    await send(rig, 102)  # written live: it has a seq
    old.block_after = len(old.frames) + 1
    await send(rig, 3, 4, 103, 5)  # the client reads 3; the rest wait with seqs 6, 7, 8
    assert numbers(old) == [0, 1, 2, 102, 3] and conn.queued() == 3
    assert await recorded(rig, cid) == cps((0, 0))  # the loop has not run
    new = Socket()
    result = await rig.hub.attach(rig.conn(new), cid, old.events()[-1]["seq"] + 1)
    assert result.resumed and result.connection_id == cid
    assert [(e["seq"], e["data"]["n"]) for e in new.events()] == [(6, 4), (7, 5)]
    assert conn.close_reason is CloseReason.REPLACED and old.aborted
    await rig.post(6)
    assert numbers(new)[-1] == 6 and numbers(old) == [0, 1, 2, 102, 3]


def parse_frames(data: bytes) -> list[Frame]:
    """Parses server frames as a client does (unmasked, no extension)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
        with pytest.raises(StopIteration) as parsed:
            next(parser)  # every byte is there: the parser must not ask for more
        frames.append(parsed.value.value)
    return frames


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, 2), (125, 2), (126, 4), (4095, 4), (4096, 4), (65535, 4), (65536, 10)],
)
async def test_write_text_writes_one_fin_text_frame(size: int, header: int) -> None:
    written = bytearray()
    transport = SimpleNamespace(write=written.extend, is_closing=lambda: False)
    # What FrameLink touches of uvicorn's websocket protocol.
    protocol = SimpleNamespace(
        transport=transport, writable=_Flag(), close_sent=False, loop=asyncio.get_running_loop()
    )
    protocol.conn = None
    link = FrameLink(protocol)
    payload = bytes(range(32, 127)) * (size // 95) + b"x" * (size % 95)
    link.write_text(payload)
    link.write_text(b"{}")  # the stream stays in step after it
    data = bytes(written)
    assert len(data) == header + size + 2 + 2
    assert data[: header + size] == Frame(Opcode.TEXT, payload).serialize(mask=False)
    frame, after = parse_frames(data)
    assert frame.fin and frame.opcode is Opcode.TEXT and frame.data == payload
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert after.fin and after.data == b"{}"


async def test_inbox_get_waits_for_put_and_keeps_fifo_order() -> None:
    inbox = _Inbox()
    getter = asyncio.create_task(inbox.get())
    await settle(lambda: inbox._waiter is not None)
    assert not getter.done()
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await getter == "a"
    inbox.put_nowait("c")
    assert [await inbox.get(), await inbox.get()] == ["b", "c"]
    assert inbox.empty()
    for _ in range(2):  # cancelled waiters leave no trace
        first = asyncio.create_task(inbox.get())
        await settle(lambda: inbox._waiter is not None)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert inbox._waiter is None
    second = asyncio.create_task(inbox.get())
    await settle(lambda: inbox._waiter is not None)
    inbox.put_nowait(1)
    assert await second == 1
    # Cancelled after the put woke it: the item stays for the next get.
    third = asyncio.create_task(inbox.get())
    await settle(lambda: inbox._waiter is not None)
    inbox.put_nowait(2)
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third
    assert await asyncio.wait_for(inbox.get(), 1) == 2 and inbox.empty()


async def test_flag_wait_returns_at_once_when_set_and_set_wakes_every_waiter() -> None:
    flag = _Flag()
    with pytest.raises(StopIteration) as done:
        flag.wait().send(None)  # completes without suspending
    assert done.value.value is True
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await settle(lambda: len(flag._waiters or ()) == 3)
    assert not any(w.done() for w in waiters) and not flag.is_set()
    waiters[1].cancel()
    await settle(lambda: len(flag._waiters or ()) == 2)
    flag.set()
    assert await asyncio.gather(waiters[0], waiters[2]) == [True, True]
    assert waiters[1].cancelled() and flag._waiters is None
    flag.clear()
    late = asyncio.create_task(flag.wait())
    await settle(lambda: len(flag._waiters or ()) == 1)
    flag.set()
    assert await late is True


async def test_memory_log_positions_stay_right_after_trimming() -> None:
    log = MemoryEventLog(min_events=3, min_age_seconds=0, max_events=3)
    for n in range(10):
        users = ["u1", "u2"] if n % 3 == 0 else ["u1"]
        await log.append(users, b'{"n":%d}' % n, EventMeta("posted"))

    async def read(user: str, after: int, limit: int = 1000) -> tuple[list[Any], bool, bool]:
        page = await log.read(user, after, limit)
        assert page.upto == await log.head(user)
        return [(e.pos, e.payload) for e in page.entries], page.truncated, page.limited

    kept = [(8, b'{"n":7}'), (9, b'{"n":8}'), (10, b'{"n":9}')]
    assert await read("u1", 0) == (kept, True, False)
    assert await read("u1", 6) == (kept, True, False)
    assert await read("u1", 7) == (kept, False, False)  # position 7 was seen: no gap
    assert await read("u1", 8, limit=1) == (kept[1:2], False, True)
    assert await read("u1", 10) == ([], False, False)
    # u2 got n = 0, 3, 6, 9 at its own positions 1..4 and keeps 2..4.
    u2_kept = [(2, b'{"n":3}'), (3, b'{"n":6}'), (4, b'{"n":9}')]
    assert await read("u2", 1) == (u2_kept, False, False)
    assert (await read("u2", 0))[1] is True


async def test_delivery_entries_match_what_read_returns() -> None:
    log = MemoryEventLog()
    deliveries: list[Delivery] = []
    log.subscribe(deliveries.append)
    await log.append(["u1", "u2"], b'{"a":1}', EventMeta("posted"))
    await log.append(["u2"], b'{"b":2}', EventMeta("typing", ephemeral=True))
    await log.append(["u3", "u1", "u2"], b'{"c":3}', EventMeta("posted", omit_connection_id="x"))
    await log.append([], b'{"d":4}', EventMeta("posted"))  # no recipient: no delivery
    assert [d.positions for d in deliveries] == [[1, 1], [2], [1, 2, 3]]
    for delivery in deliveries:
        for entry in delivery.entries():
            page = await log.read(entry.user_id, entry.pos - 1, limit=1)
            assert page.entries == [entry]


async def closed_while_failing(rig: Rig, registry: FlakyRegistry) -> tuple[Socket, str]:
    """A connection that dropped a typing event and then closed while the registry failed: its
    checkpoint taken after the drop never reached the registry."""
    sock = Socket(block_after=1)
    conn, cid = await fresh(rig, sock, ConnLimits(slow_threshold=1))
    await send(rig, 0, 100, 1)  # 100 is dropped: checkpoint (1, 2); n1 gets seq 2 at pos 3
    sock.gate.set()
    await settle(lambda: conn._writer is None)
    registry.failing = True
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
    assert await recorded(rig, cid) == cps((0, 0))
    await send(rig, 2)
    return sock, cid


async def test_resume_is_refused_while_a_closed_connections_checkpoints_are_unrecorded() -> None:
    registry = FlakyRegistry()
    rig = Rig(registry=registry)
    sock, cid = await closed_while_failing(rig, registry)
    new = Socket()
    result = await rig.hub.attach(rig.conn(new), cid, sock.events()[-1]["seq"] + 1)
    # Walking from (0, 0) would count the dropped event and send n1 again: a new connection
    # (the client refetches) is the only exact answer.
    assert not result.resumed and result.outcome == "failure"
    assert [e["event"] for e in new.events()] == ["hello"]


async def test_unrecorded_checkpoints_of_a_closed_connection_are_recorded_before_a_resume() -> None:
    registry = FlakyRegistry()
    rig = Rig(registry=registry)
    sock, cid = await closed_while_failing(rig, registry)
    registry.failing = False
    new = Socket()
    result = await rig.hub.attach(rig.conn(new), cid, sock.events()[-1]["seq"] + 1)
    assert result.resumed
    assert [(e["seq"], e["data"]["n"]) for e in new.events()] == [(3, 2)]


async def test_a_transport_that_raises_on_write_does_not_stop_the_fan_out() -> None:
    """uvloop raises on a transport that failed earlier in the same tick: the link notes it
    and the delivery to everyone else goes on."""

    class Broken:
        def write(self, data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    protocol = SimpleNamespace(
        transport=Broken(),
        writable=_Flag(),
        close_sent=False,
        loop=asyncio.get_running_loop(),
    )
    link = FrameLink(protocol)  # type: ignore[arg-type]
    assert link.can_write()
    link.write_text(b'{"event":"posted"}')
    assert link.lost and not link.can_write()
