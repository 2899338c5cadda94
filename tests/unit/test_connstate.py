"""The connection's state object without a socket or an event loop: the lifecycle and its
illegal transitions, gap-free numbering from the hello, hold and release while attaching, the
overflow policy and the resume checkpoints."""

from __future__ import annotations

import itertools
import re
from contextlib import AbstractContextManager
from typing import Any

import orjson
import pytest

from hubbub.cluster.connections import Checkpoint
from hubbub.cluster.eventlog import EventMeta, LogEntry
from hubbub.realtime.connstate import (
    ConnState,
    IllegalTransition,
    Refusal,
    StreamState,
    check_transition,
    close_code,
)
from hubbub.realtime.protocol import CloseReason, encode_event_body, event_prefix, hello_body

POSTED = EventMeta("posted")
TYPING = EventMeta("typing", ephemeral=True)
HELLO = hello_body("c" * 26, "u" * 26, "9.11.0", "node")


def body(n: int, meta: EventMeta = POSTED) -> bytes:
    return encode_event_body(meta.event, {"n": n}, {"channel_id": "c"})


def prefix(n: int, meta: EventMeta = POSTED) -> bytes:
    return event_prefix(body(n, meta))


def decoded(frame: bytes | Refusal) -> dict[str, Any]:
    assert isinstance(frame, bytes), frame
    event: dict[str, Any] = orjson.loads(frame)
    return event


def opened(head: int = 0, queue_size: int = 8, slow_threshold: int = 4) -> StreamState:
    """A fresh connection past its hello, attached at log position `head`."""
    stream = StreamState(queue_size, slow_threshold)
    stream.begin(0)
    assert decoded(stream.hello(HELLO) or b"")["seq"] == 0
    assert stream.release(head) == []
    return stream


def offer(stream: StreamState, pos: int, meta: EventMeta = POSTED, backlog: int = 0) -> Any:
    """Offers the event numbered `pos` at log position `pos`: its seq, or the refusal."""
    frame = stream.offer(pos, prefix(pos, meta), meta, backlog)
    return decoded(frame)["seq"] if isinstance(frame, bytes) else frame


def refused(message: str) -> AbstractContextManager[pytest.ExceptionInfo[IllegalTransition]]:
    """Expects IllegalTransition with exactly `message`."""
    return pytest.raises(IllegalTransition, match=f"^{re.escape(message)}$")


def cps(*pairs: tuple[int, int]) -> list[Checkpoint]:
    return [Checkpoint(seq, pos) for seq, pos in pairs]


# Lifecycle

LEGAL = {
    (ConnState.AWAITING_AUTH, ConnState.ATTACHING),
    (ConnState.AWAITING_AUTH, ConnState.CLOSING),
    (ConnState.AWAITING_AUTH, ConnState.CLOSED),
    (ConnState.ATTACHING, ConnState.ATTACHING),
    (ConnState.ATTACHING, ConnState.OPEN),
    (ConnState.ATTACHING, ConnState.CLOSING),
    (ConnState.ATTACHING, ConnState.CLOSED),
    (ConnState.OPEN, ConnState.CLOSING),
    (ConnState.OPEN, ConnState.CLOSED),
    (ConnState.CLOSING, ConnState.CLOSED),
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(ConnState, ConnState)))
def test_transition_table(current: ConnState, new: ConnState) -> None:
    if (current, new) in LEGAL:
        check_transition(current, new)
        return
    with refused(f"websocket connection cannot go from {current.value} to {new.value}"):
        check_transition(current, new)


def test_events_out_of_place_raise_with_exact_messages() -> None:
    stream = StreamState(8, 4)
    with refused("websocket connection cannot go from awaiting_auth to open"):
        stream.release(0)
    with refused("websocket connection cannot send hello at seq 0 while awaiting_auth"):
        stream.hello(HELLO)
    with refused("websocket connection cannot replay while awaiting_auth"):
        stream.replay([])
    stream.begin(5)  # a resume: no hello in the middle of a numbering
    with refused("websocket connection cannot send hello at seq 5 while attaching"):
        stream.hello(HELLO)
    stream.release(0)
    with refused("websocket connection cannot go from open to attaching"):
        stream.begin(0)
    with refused("websocket connection cannot go from open to open"):
        stream.release(0)
    with refused("websocket connection cannot replay while open"):
        stream.replay([])
    assert stream.state is ConnState.OPEN  # a refused event changes nothing


def test_close_and_finish_happen_once() -> None:
    stream = opened()
    assert stream.close(CloseReason.SLOW_CONSUMER) == 1013  # resumable: the client comes back
    assert stream.state is ConnState.CLOSING and stream.close_reason is CloseReason.SLOW_CONSUMER
    assert stream.close(CloseReason.SERVER_DRAIN) is None  # already closing: the first one holds
    assert stream.close_reason is CloseReason.SLOW_CONSUMER
    assert stream.finish() and stream.state is ConnState.CLOSED
    assert not stream.finish()
    with refused("websocket connection cannot go from closed to attaching"):
        stream.begin(0)


def test_a_peer_close_finishes_an_open_connection_without_a_close_reason() -> None:
    stream = opened()
    assert stream.finish() and stream.state is ConnState.CLOSED and stream.close_reason is None
    assert stream.close(CloseReason.SERVER_DRAIN) is None


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (CloseReason.SLOW_CONSUMER, 1013),
        (CloseReason.WRITE_TIMEOUT, 1013),
        (CloseReason.SERVER_DRAIN, 1012),
        (CloseReason.AUTH_FAILED, 4003),
        (CloseReason.REPLACED, 4009),
        (CloseReason.CLIENT_CLOSE, 1000),
    ],
)
def test_close_codes(reason: CloseReason, code: int) -> None:
    assert close_code(reason) == code
    assert StreamState(8, 4).close(reason) == code
    assert StreamState(8, 4).close(reason, 4321) == 4321  # an explicit code wins


def test_closed_while_attaching_sends_nothing_and_holds_nothing() -> None:
    stream = StreamState(8, 4)
    stream.begin(0)
    assert offer(stream, 1) is Refusal.HELD
    stream.close(CloseReason.SERVER_DRAIN)
    # The hub's attach goes on after its awaits; the connection stays closed and silent.
    assert stream.hello(HELLO) is None
    assert stream.replay([LogEntry("u", 1, 0.0, body(1), POSTED)]) == []
    assert stream.release(0) == []
    assert offer(stream, 2) is Refusal.IGNORED
    assert not stream.may_reply()


# Numbering


def test_fresh_stream_numbers_gap_free_from_the_hello() -> None:
    stream = StreamState(8, 4)
    assert stream.state is ConnState.AWAITING_AUTH
    assert offer(stream, 1) is Refusal.IGNORED  # not attached: not a recipient yet
    stream.begin(0)
    hello = decoded(stream.hello(HELLO) or b"")
    assert hello["event"] == "hello" and hello["seq"] == 0
    stream.release(after_pos=3)
    assert stream.state is ConnState.OPEN
    assert [offer(stream, pos) for pos in (4, 5, 6)] == [1, 2, 3]
    frame = stream.offer(7, prefix(7), POSTED, 0)
    assert decoded(frame) == {
        "event": "posted",
        "data": {"n": 7},
        "broadcast": {"channel_id": "c"},
        "seq": 4,
    }
    assert stream.seq == 5


def test_events_already_passed_are_ignored_without_a_seq() -> None:
    stream = opened(head=5)
    assert offer(stream, 5) is Refusal.IGNORED  # the attach read covered it
    assert offer(stream, 6) == 1
    assert offer(stream, 6) is Refusal.IGNORED  # a repeat (republished by the outbox)
    assert offer(stream, 4) is Refusal.IGNORED
    assert offer(stream, 8) == 2  # positions may skip (other connections' targeted events)


def test_refusals_are_falsy_and_frames_are_not() -> None:
    stream = opened()
    assert stream.offer(1, prefix(1), POSTED, 0)
    assert all(not refusal for refusal in Refusal)


def test_silenced_stream_sends_no_event_and_no_reply() -> None:
    stream = opened()
    assert stream.may_reply()
    stream.silence()
    assert offer(stream, 1) is Refusal.IGNORED and not stream.may_reply()
    assert stream.seq == 1


# Hold and release


def test_events_during_attach_are_held_then_released_past_the_read() -> None:
    stream = StreamState(8, 4)
    stream.begin(0)
    # Published while the hub reads the head (3): 2 and 3 are covered by the read, 4 and 5 not.
    assert [offer(stream, pos) for pos in (2, 3)] == [Refusal.HELD] * 2
    stream.hello(HELLO)
    assert offer(stream, 4) is Refusal.HELD and offer(stream, 5) is Refusal.HELD
    held = stream.release(after_pos=3)
    assert [h.pos for h in held] == [2, 3, 4, 5]
    assert [offer(stream, h.pos, h.meta) for h in held] == [Refusal.IGNORED] * 2 + [1, 2]
    assert offer(stream, 6) == 3
    with refused("websocket connection cannot go from open to open"):  # released once only
        stream.release(6)


def test_resume_replays_then_releases_without_loss_or_repeat() -> None:
    stream = StreamState(8, 4)
    stream.begin(7)  # the client saw seq 6 and asks for 7
    assert offer(stream, 12) is Refusal.HELD  # live while the replay is read
    entries = [
        LogEntry("u", 10, 0.0, body(10), POSTED),
        LogEntry("u", 11, 0.0, body(11, TYPING), TYPING),  # stale: skipped
        LogEntry("u", 12, 0.0, body(12), POSTED),
    ]
    frames = stream.replay(entries)
    assert [(decoded(f)["seq"], decoded(f)["data"]["n"]) for f in frames] == [(7, 10), (8, 12)]
    held = stream.release(after_pos=12)
    assert [offer(stream, h.pos) for h in held] == [Refusal.IGNORED]  # 12 was replayed
    assert offer(stream, 13) == 9
    # Checkpoints: after the skipped typing event, and the newest.
    assert stream.take_checkpoints() == cps((7, 11), (9, 13))


def test_a_resume_that_falls_back_to_fresh_restarts_the_numbering() -> None:
    stream = StreamState(8, 4)
    stream.begin(40)
    assert offer(stream, 3) is Refusal.HELD
    stream.begin(0)  # the resume could not be done exactly: a new connection id and hello
    assert decoded(stream.hello(HELLO) or b"")["seq"] == 0
    held = stream.release(after_pos=2)
    assert [offer(stream, h.pos) for h in held] == [1]
    assert offer(stream, 4) == 2


# Overflow policy


def test_overflow_drops_ephemeral_first_then_asks_to_close() -> None:
    stream = opened(queue_size=8, slow_threshold=4)
    assert offer(stream, 1, TYPING, backlog=3) == 1  # below the threshold: typing goes out
    assert offer(stream, 2, TYPING, backlog=4) is Refusal.DROPPED
    assert offer(stream, 3, POSTED, backlog=4) == 2  # durable events still queue
    assert offer(stream, 4, POSTED, backlog=7) == 3
    assert offer(stream, 5, TYPING, backlog=8) is Refusal.DROPPED  # still a drop, not a close
    assert offer(stream, 6, POSTED, backlog=8) is Refusal.OVERFLOW
    assert offer(stream, 7, POSTED, backlog=9) is Refusal.OVERFLOW
    assert stream.seq == 4  # no seq for what was dropped or refused: the numbering has no gap
    assert stream.state is ConnState.OPEN  # closing is the connection's to do (SLOW_CONSUMER)
    assert close_code(CloseReason.SLOW_CONSUMER) == 1013


def test_a_drop_takes_a_checkpoint_that_must_be_recorded() -> None:
    stream = opened()
    assert offer(stream, 1) == 1
    assert offer(stream, 2, TYPING, backlog=4) is Refusal.DROPPED
    assert offer(stream, 3) == 2
    # A resume walking from (1, 1) would give the dropped event seq 2: (1, 2) says it got none.
    assert stream.take_checkpoints() == cps((1, 2), (2, 3))


# Checkpoints


def test_take_checkpoints_returns_the_newest_once() -> None:
    stream = opened()
    assert stream.take_checkpoints() == []  # the attach records (0, head) itself
    offer(stream, 1)
    offer(stream, 2)
    assert stream.take_checkpoints() == cps((2, 2))
    assert stream.take_checkpoints() == []
    offer(stream, 3)
    assert stream.take_checkpoints() == cps((3, 3))


def test_consecutive_skips_keep_only_the_newest_must_record_checkpoint() -> None:
    stream = opened()
    offer(stream, 1)
    for pos in (2, 3, 4):
        offer(stream, pos, TYPING, backlog=4)
    offer(stream, 5)
    offer(stream, 6, TYPING, backlog=4)
    assert stream.take_checkpoints() == cps((1, 4), (2, 6))
    assert stream.take_checkpoints() == []


def test_failed_checkpoints_go_back_ahead_of_newer_ones() -> None:
    stream = opened()
    offer(stream, 1)
    offer(stream, 2, TYPING, backlog=4)
    offer(stream, 3)
    taken = stream.take_checkpoints()
    assert taken == cps((1, 2), (2, 3))
    assert stream.checkpoints_failed(taken)  # the first failure: worth a log line
    offer(stream, 4, TYPING, backlog=4)
    offer(stream, 5)
    retry = stream.take_checkpoints()
    # (2, 4) replaces (2, 3): the drop at 4 came right after seq 2, so it says all (2, 3) did.
    assert retry == cps((1, 2), (2, 4), (3, 5))
    assert not stream.checkpoints_failed(retry) and stream.checkpoint_failing
    stream.checkpoints_recorded()
    assert not stream.checkpoint_failing
    assert stream.take_checkpoints() == retry  # the failed ones are still owed
    assert stream.take_checkpoints() == []


def test_a_skip_while_a_failing_batch_is_in_flight_supersedes_its_last_checkpoint() -> None:
    """The race the hub's checkpoint loop can hit: a batch is taken, a drop happens while the
    registry call is still pending, then the call fails. The failed (2, 3) must not come back
    beside the newer (2, 4) (it used to: a flaky tests/unit/test_fanout_paths.py)."""
    stream = opened()
    offer(stream, 1)
    offer(stream, 2, TYPING, backlog=4)
    offer(stream, 3)
    in_flight = stream.take_checkpoints()
    assert in_flight == cps((1, 2), (2, 3))
    offer(stream, 4, TYPING, backlog=4)  # while the batch is in flight
    stream.checkpoints_failed(in_flight)
    offer(stream, 5)
    assert stream.take_checkpoints() == cps((1, 2), (2, 4), (3, 5))
