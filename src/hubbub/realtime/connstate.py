"""The state of one websocket connection without I/O: events in, frames and decisions out.

`WebConn` (`realtime/session.py`) owns the socket, the timers and the writer task; it feeds
every event to one `StreamState` and writes what comes back. The state object decides:

- the lifecycle: `AWAITING_AUTH -> ATTACHING -> OPEN -> CLOSING -> CLOSED` (`_ALLOWED`); an
  event the current state does not allow raises `IllegalTransition` naming both;
- the numbering: every event the client gets carries the next `seq`, gap-free from the hello's 0
  (or from the `sequence_number` a resumed client asked for);
- hold and release: while the hub attaches the connection (reads the log for a replay or its
  head), live events are held; `release` hands back those past the position the read reached,
  so none is lost or sent twice;
- the overflow policy: given how many frames already wait for a paused transport (`backlog`),
  an ephemeral event is dropped from `slow_threshold` on, and from `queue_size` on the
  connection must close as a slow consumer (a resumable close code);
- the resume checkpoints, `(seq, log position)`: the newest, and each one taken right after an
  event that got no seq, which must all be recorded (a resume walks the log from a checkpoint
  giving every matching event the next seq, so it needs one after each skip);
- stale and late events (DESIGN §4 invariants 6 and 8): an event whose transaction had
  committed before the hello (`hello_snapshot`, `hubbub.realtime.commitclock`) is skipped, as
  the client has it from the refetch the hello asked for; an event the log marked late (its
  channel's next event was appended first) is never sent after its successor: the stream stops
  and the connection must end with a fresh hello (`Refusal.RESYNC`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hubbub.cluster.connections import Checkpoint
from hubbub.cluster.eventlog import EventMeta, LogEntry
from hubbub.realtime.commitclock import Snapshot
from hubbub.realtime.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_READ_TIMEOUT,
    CLOSE_REPLACED,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN,
    CloseReason,
    event_prefix,
    stamp,
)


class ConnState(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    ATTACHING = "attaching"  # authenticated; the hub is reading the log, live events are held
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED = {
    ConnState.AWAITING_AUTH: {ConnState.ATTACHING, ConnState.CLOSING, ConnState.CLOSED},
    # Attaching again: a resume that cannot be done exactly falls back to a fresh numbering.
    ConnState.ATTACHING: {
        ConnState.ATTACHING,
        ConnState.OPEN,
        ConnState.CLOSING,
        ConnState.CLOSED,
    },
    ConnState.OPEN: {ConnState.CLOSING, ConnState.CLOSED},
    ConnState.CLOSING: {ConnState.CLOSED},
    ConnState.CLOSED: set(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: ConnState, new: ConnState) -> None:
    if new not in _ALLOWED[current]:
        raise IllegalTransition(
            f"websocket connection cannot go from {current.value} to {new.value}"
        )


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
    CloseReason.RATE_LIMITED: CLOSE_POLICY,
}


def close_code(reason: CloseReason) -> int:
    """The close code a server-side close for `reason` sends."""
    return _CLOSE_CODES.get(reason, CLOSE_NORMAL)


class Refusal(enum.Enum):
    """Why `StreamState.offer` gave no frame. Falsy, so that `if frame:` tells a frame (never
    empty) from a refusal at the cost of a length check, on the hot path of fan-out."""

    HELD = "held"  # attaching: kept until `release`
    IGNORED = "ignored"  # not for this stream now: already passed, not open, or silenced
    DROPPED = "dropped"  # ephemeral, over the slow threshold: skipped (count the drop)
    OVERFLOW = "overflow"  # the send queue is full: close the connection as a slow consumer
    STALE = "stale"  # committed before the hello: the client refetched it (count it)
    RESYNC = "resync"  # late: this stream stopped; the client must start over with a new hello

    def __bool__(self) -> Literal[False]:
        return False


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """A live event that arrived while attaching, as it was offered."""

    pos: int
    prefix: bytes
    meta: EventMeta


_OPEN = ConnState.OPEN
_ATTACHING = ConnState.ATTACHING
_HELD = Refusal.HELD
_IGNORED = Refusal.IGNORED
_DROPPED = Refusal.DROPPED
_OVERFLOW = Refusal.OVERFLOW
_STALE = Refusal.STALE
_RESYNC = Refusal.RESYNC


class StreamState:
    """One connection's lifecycle, numbering, held events, overflow policy and checkpoints.

    The resume state is two integers: the `seq` of the newest event and its log position;
    checkpoints taken right after a skipped event are kept apart until taken, because each
    must be recorded (the seq/position correspondence changes there).
    """

    __slots__ = (
        "_checkpoint_failing",
        "_cp_pos",
        "_cp_recorded",
        "_cp_seq",
        "_held",
        "_last_pos",
        "_must_record",
        "close_reason",
        "hello_snapshot",
        "queue_size",
        "seq",
        "silenced",
        "slow_threshold",
        "state",
    )

    def __init__(self, queue_size: int, slow_threshold: int) -> None:
        self.queue_size = queue_size
        self.slow_threshold = slow_threshold
        self.state = ConnState.AWAITING_AUTH
        self.seq = 0  # the next event's seq
        self.silenced = False  # a resumed connection took over: nothing more is sent
        self.close_reason: CloseReason | None = None  # set by a server-side close
        # What had committed when this connection's hello was sent (None: unknown, skip nothing).
        self.hello_snapshot: Snapshot | None = None
        self._last_pos = 0  # the newest log position numbered, skipped or attached past
        self._held: list[HeldEvent] | None = None
        self._cp_seq = -1
        self._cp_pos = 0
        self._cp_recorded = (-1, 0)
        self._must_record: list[tuple[int, int]] | None = None
        self._checkpoint_failing = False

    def _set_state(self, new: ConnState) -> None:
        check_transition(self.state, new)
        self.state = new

    def _refuse(self, what: str) -> IllegalTransition:
        return IllegalTransition(f"websocket connection cannot {what} while {self.state.value}")

    @property
    def ending(self) -> bool:
        """Closing or closed: nothing more is sent."""
        return self.state is ConnState.CLOSING or self.state is ConnState.CLOSED

    # Attaching

    def begin(self, seq: int) -> None:
        """The hub starts attaching: numbering continues at `seq` and live events are held."""
        self._set_state(ConnState.ATTACHING)
        self.seq = seq

    def hello(self, body: bytes) -> bytes | None:
        """The hello frame (`hello_body`), which opens a fresh numbering at 0; None once
        the connection is ending (it was closed while attaching)."""
        if self.ending:
            return None
        if self.state is not _ATTACHING or self.seq != 0:
            raise self._refuse(f"send hello at seq {self.seq}")
        self.seq = 1
        return stamp(body, 0)

    def replay(self, entries: Iterable[LogEntry]) -> list[bytes]:
        """Frames for events the client missed, numbered in order; typing and status events
        are stale by now and skipped."""
        if self.ending:
            return []
        if self.state is not _ATTACHING:
            raise self._refuse("replay")
        frames = []
        for entry in entries:
            if entry.meta.ephemeral:
                self._skip(entry.pos)
            else:
                frames.append(self._number(entry.pos, event_prefix(entry.payload)))
        return frames

    def release(self, after_pos: int) -> list[HeldEvent]:
        """Opens the stream; the caller offers the returned held events again (those at or
        before `after_pos`, which the log read covered, are then ignored)."""
        if self.ending:
            self._held = None
            return []
        self._set_state(ConnState.OPEN)
        if after_pos > self._last_pos:
            self._last_pos = after_pos
        held, self._held = self._held, None
        return held or []

    # Live events (the hot path of fan-out: one call per connection per event)

    def offer(self, pos: int, prefix: bytes, meta: EventMeta, backlog: int) -> bytes | Refusal:
        """The frame for a live event at log position `pos` (`prefix` from `event_prefix`),
        or why there is none. `backlog`: frames already waiting for a paused transport."""
        state = self.state
        if state is not _OPEN:
            if state is not _ATTACHING:
                return _IGNORED
            held = self._held
            if held is None:
                self._held = held = []
            held.append(HeldEvent(pos, prefix, meta))
            return _HELD
        if pos <= self._last_pos or self.silenced:
            return _IGNORED
        if meta.xid or meta.late:
            refusal = self.stale_or_late(meta)
            if refusal is _STALE:
                self._skip(pos)
                return refusal
            if refusal is _RESYNC:
                self.silenced = True
                return refusal
        if backlog:
            if backlog >= self.slow_threshold and meta.ephemeral:
                self._skip(pos)
                return _DROPPED
            if backlog >= self.queue_size:
                return _OVERFLOW
        seq = self.seq
        self.seq = seq + 1
        self._cp_seq = seq
        self._cp_pos = self._last_pos = pos
        return prefix + b"%d}" % seq

    def pass_over(self, pos: int) -> None:
        """A live event this connection's scope leaves out (`realtime/scope.py`): no seq, and
        a checkpoint right after it, as for any other skip."""
        if self.state is _OPEN and pos > self._last_pos and not self.silenced:
            self._skip(pos)

    def stale_or_late(self, meta: EventMeta) -> Refusal | None:
        """STALE for an event committed before the hello, RESYNC for a late one the client
        does not have, None for an event to number."""
        snapshot = self.hello_snapshot
        if meta.xid and snapshot is not None and snapshot.committed(meta.xid):
            return _STALE
        if meta.late:
            return _RESYNC
        return None

    def may_reply(self) -> bool:
        """Replies (`seq_reply`) go out unless the connection is ending or silenced."""
        return not (self.silenced or self.ending)

    def _number(self, pos: int, prefix: bytes) -> bytes:
        seq = self.seq
        self.seq = seq + 1
        self._cp_seq = seq
        self._cp_pos = pos
        if pos > self._last_pos:
            self._last_pos = pos
        return prefix + b"%d}" % seq

    def _skip(self, pos: int) -> None:
        """An event of this connection that gets no seq (dropped, or stale in a replay): a
        checkpoint right after it, one that must be recorded."""
        if pos > self._last_pos:
            self._last_pos = pos
        cp = (self.seq - 1, pos)
        self._cp_seq, self._cp_pos = cp
        must = self._must_record
        if must is None:
            self._must_record = [cp]
        elif must[-1][0] == cp[0]:
            must[-1] = cp  # consecutive skips: the newest position says it all
        else:
            must.append(cp)

    # Checkpoints

    def take_checkpoints(self) -> list[Checkpoint]:
        """Checkpoints not recorded yet, oldest first; the caller records them (and hands
        them to `checkpoints_failed` if that fails)."""
        out = [Checkpoint(s, p) for s, p in self._must_record or ()]
        self._must_record = None
        latest = (self._cp_seq, self._cp_pos)
        if latest[0] >= 0 and latest != self._cp_recorded:
            if not out or (out[-1].seq, out[-1].pos) != latest:
                out.append(Checkpoint(*latest))
            self._cp_recorded = latest
        return out

    def checkpoints_failed(self, checkpoints: list[Checkpoint]) -> bool:
        """Puts checkpoints that could not be recorded back, ahead of newer ones, to be
        retried with them. True when recording was not failing before (worth a log line)."""
        first = not self._checkpoint_failing
        self._checkpoint_failing = True
        # Not truncated: a resume walking from an older checkpoint needs every checkpoint taken
        # after a skip; the list grows only by skips while the registry is failing.
        failed = [(cp.seq, cp.pos) for cp in checkpoints]
        newer = list(self._must_record or ())
        # A skip while the failed batch was in flight may have checkpointed the same seq at a
        # later position: as for consecutive skips, the newest position says it all.
        while failed and newer and failed[-1][0] == newer[0][0]:
            failed.pop()
        self._must_record = failed + newer
        return first

    def checkpoints_recorded(self) -> None:
        self._checkpoint_failing = False

    @property
    def checkpoint_failing(self) -> bool:
        return self._checkpoint_failing

    # Closing

    def silence(self) -> None:
        """Nothing more is sent (a resumed connection is taking this one over)."""
        self.silenced = True

    def close(self, reason: CloseReason, code: int | None = None) -> int | None:
        """A close from the server side: the close code to send, or None when the connection
        is already ending."""
        if self.ending:
            return None
        self._set_state(ConnState.CLOSING)
        self.close_reason = reason
        return code or close_code(reason)

    def finish(self) -> bool:
        """The connection is gone; False when it already was (its bookkeeping is done)."""
        if self.state is ConnState.CLOSED:
            return False
        if self.state is not ConnState.CLOSING:
            self._set_state(ConnState.CLOSING)
        self._set_state(ConnState.CLOSED)
        return True
