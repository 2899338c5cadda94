"""Committed before the hello? PostgreSQL snapshot visibility as the connection applies it, and
what a connection does with stale and late events (no socket, no database)."""

from __future__ import annotations

from typing import Any

import orjson

from hubbub.cluster.connections import Checkpoint
from hubbub.cluster.eventlog import EventMeta
from hubbub.realtime.commitclock import Snapshot
from hubbub.realtime.connstate import Refusal, StreamState
from hubbub.realtime.protocol import encode_event_body, event_prefix, hello_body

HELLO = hello_body("c" * 26, "u" * 26, "9.11.0", "node")


def test_snapshot_parses_postgres_text() -> None:
    snap = Snapshot.parse("100:105:101,103")
    assert snap == Snapshot(100, 105, frozenset({101, 103}))
    assert Snapshot.parse("7:7:") == Snapshot(7, 7, frozenset())
    assert Snapshot.parse("") is None


def test_visibility_is_postgres_rule() -> None:
    snap = Snapshot(100, 105, frozenset({101, 103}))
    assert snap.committed(99)  # below xmin: finished before the snapshot
    assert snap.committed(100) and snap.committed(102) and snap.committed(104)
    assert not snap.committed(101) and not snap.committed(103)  # in progress then
    assert not snap.committed(105) and not snap.committed(200)  # not started then


def _stream(snapshot: str) -> StreamState:
    stream = StreamState(8, 4)
    stream.begin(0)
    stream.hello_snapshot = Snapshot.parse(snapshot)
    assert stream.hello(HELLO) is not None
    stream.release(0)
    return stream


def _offer(stream: StreamState, pos: int, meta: EventMeta) -> Any:
    frame = stream.offer(pos, event_prefix(encode_event_body("posted", {}, {})), meta, 0)
    return orjson.loads(frame)["seq"] if isinstance(frame, bytes) else frame


def test_an_event_committed_before_hello_is_skipped_with_a_checkpoint() -> None:
    stream = _stream("100:105:101")
    assert _offer(stream, 1, EventMeta("posted", xid=99)) is Refusal.STALE
    assert _offer(stream, 2, EventMeta("posted", xid=101)) == 1  # was in progress: not refetched
    assert _offer(stream, 3, EventMeta("posted", xid=102)) is Refusal.STALE
    assert _offer(stream, 4, EventMeta("posted", xid=105)) == 2
    assert _offer(stream, 5, EventMeta("posted")) == 3  # no xid: delivered
    # A resume walking the log needs to know where the numbering skipped.
    assert stream.take_checkpoints() == [Checkpoint(0, 1), Checkpoint(1, 3), Checkpoint(3, 5)]


def test_without_a_snapshot_nothing_is_stale() -> None:
    stream = _stream("")
    assert _offer(stream, 1, EventMeta("posted", xid=1)) == 1


def test_a_late_event_stops_the_stream_unless_the_client_refetched_it() -> None:
    stream = _stream("100:105:")
    # Committed before the hello: the refetch has it, in order.
    assert _offer(stream, 1, EventMeta("posted", xid=50, late=True)) is Refusal.STALE
    assert _offer(stream, 2, EventMeta("posted", xid=110)) == 1
    # Committed after the hello and late: never sent after its successor.
    assert _offer(stream, 3, EventMeta("posted", xid=111, late=True)) is Refusal.RESYNC
    assert stream.silenced
    assert _offer(stream, 4, EventMeta("posted", xid=112)) is Refusal.IGNORED
