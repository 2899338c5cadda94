"""Hub delivery and resume without sockets: WebConns write into lists instead of websockets."""

from __future__ import annotations

import pytest

from hubbub.cluster.bus import MemoryBus
from hubbub.cluster.eventlog import MemoryEventLog
from hubbub.realtime.hub import Hub
from hubbub.realtime.protocol import CloseReason
from hubbub.realtime.scope import ChannelView
from hubbub.realtime.session import ConnLimits
from tests.support.hubrig import Rig, Socket, settle


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
    rig.hub = Hub(rig.log, rig.registry, rig.metrics, MemoryBus())
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


async def test_resume_after_the_resuming_node_died_does_not_repeat_a_replayed_event() -> None:
    """A replay skips a stale typing event, which moves the seq/position correspondence. The
    node that replayed is SIGKILLed before its checkpoint loop ran; a second resume, on a third
    node, must still start right after what the client saw, not one event early."""
    rig = Rig()
    node_b = Hub(rig.log, rig.registry, rig.metrics, MemoryBus())
    node_c = Hub(rig.log, rig.registry, rig.metrics, MemoryBus())
    first = Socket()
    conn = rig.conn(first)
    cid = (await rig.hub.attach(conn, "", None)).connection_id
    await rig.post(0)
    await rig.post(1)
    await settle(lambda: len(first.events()) == 3)  # hello, seq 1 and 2
    await conn.finish(CloseReason.CLIENT_CLOSE, 1000)
    await rig.post(100, ephemeral=True)  # skipped by the replay below
    await rig.post(2)
    await rig.post(3)

    second = Socket()
    result = await node_b.attach(rig.conn(second), cid, 3)
    assert result.resumed and result.replayed == 2
    assert [(e["seq"], e["data"]["n"]) for e in second.events()] == [(3, 2), (4, 3)]
    # node B dies here: no checkpoint batch, no close.

    third = Socket()
    result = await node_c.attach(rig.conn(third), cid, 5)
    assert result.resumed and result.replayed == 0, result
    await rig.post(4)
    await settle(lambda: len(third.events()) == 1)
    assert [(e["seq"], e["data"]["n"]) for e in third.events()] == [(5, 4)]


@pytest.mark.parametrize("hold", [True, False], ids=["held", "not-held"])
async def test_a_live_skip_holds_the_next_event_until_its_checkpoint_is_recorded(
    hold: bool,
) -> None:
    """A live typing event left out by the connection's scope moves the seq/position
    correspondence. In a cluster the next event waits until that skip's checkpoint is
    recorded, so that a resume on another node, after this one is SIGKILLed (no checkpoint
    batch ran: its interval is an hour here), starts right after what the client saw. Without
    the hold (`not-held`, what one node alone does) the resume counts the skipped event and
    repeats the next one: the test shows the difference."""
    rig = Rig()
    node_a = Hub(
        rig.log,
        rig.registry,
        rig.metrics,
        MemoryBus(),
        checkpoint_interval=3600,
        hold_after_skip=hold,
    )
    node_b = Hub(rig.log, rig.registry, rig.metrics, MemoryBus())
    first = Socket()
    conn = rig.conn(first, skip_gate=node_a.skip_gate if hold else None)
    cid = (await node_a.attach(conn, "", None)).connection_id
    conn.view = ChannelView()
    for data in (
        {"channel_id": "elsewhere"},
        {"thread_channel_id": "", "is_thread_view": False},
        {"thread_channel_id": "", "is_thread_view": True},
    ):
        conn.view.apply(data)
    await rig.post(0)
    await rig.post(100, ephemeral=True)  # typing in channel "c": left out by the scope
    await rig.post(1)
    await settle(lambda: len(first.events()) == 3)  # hello, then seq 1 and 2
    assert [(e["seq"], e["data"]["n"]) for e in first.events()[1:]] == [(1, 0), (2, 1)]
    # node A dies here: no checkpoint batch, no close.

    second = Socket()
    result = await node_b.attach(rig.conn(second), cid, 3)
    assert result.resumed
    if hold:
        assert result.replayed == 0 and second.events() == []
    else:
        assert [(e["seq"], e["data"]["n"]) for e in second.events()] == [(3, 1)]  # repeated
