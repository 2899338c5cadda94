"""The per-user event log: every event a user should receive, at increasing integer positions.

It is both the delivery path (subscribers hear each append) and the resume buffer (a reconnecting
client's missed events are read back from it). Retention keeps an entry while it is among the
newest `min_events` of its user OR younger than `min_age_seconds`, up to a hard cap.

An `epoch` names one incarnation of the log; if it changes (the backend lost its data), stored
positions are meaningless and clients must start over with a new connection id.
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from itertools import islice

from hubbub.ids import new_id
from hubbub.lifecycle import Component


@dataclass(frozen=True, slots=True)
class EventMeta:
    """What delivery needs to know without parsing the payload."""

    event: str
    ephemeral: bool = False
    connection_id: str = ""  # only this connection
    omit_connection_id: str = ""  # every connection but this one
    # The committing transaction's id on PostgreSQL (0: unknown): a connection whose hello
    # snapshot already saw it commit skips the event (the refetch after hello has it).
    xid: int = 0
    # Set by the log, not the caller: an event of a channel appended after a later event of the
    # same channel (its node died between commit and append). Never delivered out of order: a
    # connection that would get it gets a fresh hello instead.
    late: bool = False

    def matches(self, connection_id: str) -> bool:
        if self.connection_id and self.connection_id != connection_id:
            return False
        return not (self.omit_connection_id and self.omit_connection_id == connection_id)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event at one position of one user's log, as `read` returns it."""

    user_id: str
    pos: int
    created: float  # time.time()
    payload: bytes  # the event's JSON object without "seq"
    meta: EventMeta


@dataclass(slots=True)
class Delivery:
    """One appended event, as subscribers hear it: `users[i]` got it at `positions[i]`.

    One object per event rather than one per recipient: at 1,000 members a post is one
    `Delivery`, and the hub walks the two lists.
    """

    payload: bytes
    meta: EventMeta
    created: float
    users: list[str]
    positions: list[int]

    def entries(self) -> list[LogEntry]:
        return [
            LogEntry(user, pos, self.created, self.payload, self.meta)
            for user, pos in zip(self.users, self.positions, strict=True)
        ]


@dataclass(frozen=True, slots=True)
class ReadResult:
    entries: list[LogEntry]
    upto: int  # the newest position known for the user when read
    limited: bool  # more entries follow after the last one returned
    truncated: bool  # entries after `after` were already dropped: a gap cannot be filled


Subscriber = Callable[[Delivery], Awaitable[None] | None]
ResetCallback = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class BusStatus:
    """How live delivery through a shared log's feed is doing (the operator console shows it)."""

    running: bool  # the listener task is alive
    healthy: bool  # subscribed, caught up, and the last probe came back in time
    lag_seconds: float  # probe round trip through the subscriber connection (with its backlog)
    reconnects: int
    resets: int  # times the bus could not guarantee continuity (epoch change or feed gap)
    last_error: str


class EventLog(Component, abc.ABC):
    @property
    @abc.abstractmethod
    def epoch(self) -> str: ...

    @abc.abstractmethod
    async def append(
        self,
        user_ids: Iterable[str],
        payload: bytes,
        meta: EventMeta,
        *,
        event_id: str | None = None,
        channel: tuple[str, int] | None = None,
    ) -> None:
        """Appends the event to each user's log and notifies subscribers.

        With an `event_id`, a repeated append of the same event (a retry, or a republish by the
        outbox sweeper) within the dedupe window is ignored. `channel` is (channel id, channel
        sequence) for an event that must reach clients in its channel's commit order: if a
        later sequence of the channel was appended already, the entry is stored with
        `meta.late` set (see `EventMeta.late`).
        """

    @abc.abstractmethod
    async def head(self, user_id: str) -> int:
        """The newest position of the user's log (0 when empty)."""

    @abc.abstractmethod
    async def read(
        self, user_id: str, after: int, limit: int = 1000, epoch: str | None = None
    ) -> ReadResult:
        """Entries with position > `after`, oldest first. With `epoch`, the position is one of
        that incarnation of the log: a read that finds another epoch is `truncated` (what came
        after `after` there is gone), decided with the same read, so that a node that has not
        noticed an epoch change yet cannot take a new incarnation's entries for the old one's."""

    @abc.abstractmethod
    def subscribe(self, subscriber: Subscriber) -> None:
        """Calls `subscriber` once per appended event with every position it got, in append
        order (the node's hub)."""

    def on_reset(self, callback: ResetCallback) -> None:
        """`callback(reason)` runs when live delivery lost continuity (a log shared through a
        server that lost its data, or a feed with a gap). A log in this process never does."""
        return None

    def problems(self) -> list[str]:
        """Why live delivery through this log is impaired right now (empty when healthy)."""
        return []

    def bus_status(self) -> BusStatus | None:
        """The state of the feed that carries appends to other nodes (None: a log in this
        process has none)."""
        return None

    def available(self) -> bool:
        """Whether an append now is expected to succeed (False while the backend is known
        to be unreachable: writers then leave their events to the outbox sweeper)."""
        return True


@dataclass(frozen=True, slots=True)
class _Stored:
    """An event as the memory log keeps it: one object shared by every recipient's deque."""

    created: float
    payload: bytes
    meta: EventMeta


class MemoryEventLog(EventLog):
    """The single-node backend: per-user deques in this process.

    A user's deque holds references to shared `_Stored` events; positions are implicit (the
    newest is the user's head, the others count down from it), so appending an event for 1,000
    members costs 1,000 deque appends and no per-member object.
    """

    def __init__(
        self,
        min_events: int = 1000,
        min_age_seconds: float = 600,
        max_events: int = 20_000,
        dedupe_seconds: float = 600,
    ) -> None:
        self.min_events = min_events
        self.min_age = min_age_seconds
        self.max_events = max(max_events, min_events)
        self._epoch = new_id()
        self._logs: dict[str, deque[_Stored]] = {}
        self._heads: dict[str, int] = {}
        self._subscribers: list[Subscriber] = []
        self.dedupe_seconds = dedupe_seconds
        self._seen: dict[str, float] = {}  # event id -> when appended, oldest first
        self._channel_seq: dict[str, int] = {}  # channel id -> newest sequence appended

    @property
    def epoch(self) -> str:
        return self._epoch

    async def append(
        self,
        user_ids: Iterable[str],
        payload: bytes,
        meta: EventMeta,
        *,
        event_id: str | None = None,
        channel: tuple[str, int] | None = None,
    ) -> None:
        now = time.time()
        if event_id is not None and self._already_seen(event_id, now):
            return
        if channel is not None and channel[1] > 0:
            newest = self._channel_seq.get(channel[0], 0)
            if channel[1] < newest:
                meta = replace(meta, late=True)
            else:
                self._channel_seq[channel[0]] = channel[1]
        stored = _Stored(now, payload, meta)
        heads = self._heads
        logs = self._logs
        min_events = self.min_events
        users = list(user_ids)
        positions = []
        for user_id in users:
            pos = heads.get(user_id, 0) + 1
            heads[user_id] = pos
            positions.append(pos)
            log = logs.get(user_id)
            if log is None:
                log = logs[user_id] = deque()
            log.append(stored)
            if len(log) > min_events:
                self._trim(log, now)
        if not users:
            return
        delivery = Delivery(payload, meta, now, users, positions)
        for subscriber in self._subscribers:
            result = subscriber(delivery)
            if result is not None:
                await result

    def _already_seen(self, event_id: str, now: float) -> bool:
        while self._seen:
            oldest = next(iter(self._seen))
            if now - self._seen[oldest] <= self.dedupe_seconds:
                break
            del self._seen[oldest]
        if event_id in self._seen:
            return True
        self._seen[event_id] = now
        return False

    def _trim(self, log: deque[_Stored], now: float) -> None:
        while len(log) > self.max_events or (
            len(log) > self.min_events and now - log[0].created > self.min_age
        ):
            log.popleft()

    async def head(self, user_id: str) -> int:
        return self._heads.get(user_id, 0)

    async def read(
        self, user_id: str, after: int, limit: int = 1000, epoch: str | None = None
    ) -> ReadResult:
        log = self._logs.get(user_id)
        head = self._heads.get(user_id, 0)
        if epoch is not None and epoch != self._epoch:
            return ReadResult([], head, False, True)
        if not log:
            return ReadResult([], head, False, after < head)
        first = head - len(log) + 1
        truncated = after + 1 < first
        start = max(0, after + 1 - first)
        stop = min(len(log), start + limit)
        entries = [
            LogEntry(user_id, pos, e.created, e.payload, e.meta)
            for pos, e in enumerate(islice(log, start, stop), first + start)
        ]
        limited = start + limit < len(log)
        return ReadResult(entries, head, limited, truncated)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)
