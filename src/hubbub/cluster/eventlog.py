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
from dataclasses import dataclass

from hubbub.ids import new_id


@dataclass(frozen=True, slots=True)
class EventMeta:
    """What delivery needs to know without parsing the payload."""

    event: str
    ephemeral: bool = False
    connection_id: str = ""  # only this connection
    omit_connection_id: str = ""  # every connection but this one

    def matches(self, connection_id: str) -> bool:
        if self.connection_id and self.connection_id != connection_id:
            return False
        return not (self.omit_connection_id and self.omit_connection_id == connection_id)


@dataclass(frozen=True, slots=True)
class LogEntry:
    user_id: str
    pos: int
    created: float  # time.time()
    payload: bytes  # the event's JSON object without "seq"
    meta: EventMeta


@dataclass(frozen=True, slots=True)
class ReadResult:
    entries: list[LogEntry]
    upto: int  # the newest position known for the user when read
    limited: bool  # more entries follow after the last one returned
    truncated: bool  # entries after `after` were already dropped: a gap cannot be filled


Subscriber = Callable[[LogEntry], Awaitable[None] | None]


class EventLog(abc.ABC):
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
    ) -> None:
        """Appends the event to each user's log and notifies subscribers.

        With an `event_id`, a repeated append of the same event (a retry, or a republish by the
        outbox sweeper) within the dedupe window is ignored.
        """

    @abc.abstractmethod
    async def head(self, user_id: str) -> int:
        """The newest position of the user's log (0 when empty)."""

    @abc.abstractmethod
    async def read(self, user_id: str, after: int, limit: int = 1000) -> ReadResult:
        """Entries with position > `after`, oldest first."""

    @abc.abstractmethod
    def subscribe(self, subscriber: Subscriber) -> None:
        """Calls `subscriber` for each appended entry (the node's hub)."""


class MemoryEventLog(EventLog):
    """The single-node backend: per-user deques in this process."""

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
        self._logs: dict[str, deque[LogEntry]] = {}
        self._heads: dict[str, int] = {}
        self._subscribers: list[Subscriber] = []
        self.dedupe_seconds = dedupe_seconds
        self._seen: dict[str, float] = {}  # event id -> when appended, oldest first

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
    ) -> None:
        now = time.time()
        if event_id is not None and self._already_seen(event_id, now):
            return
        appended = []
        for user_id in user_ids:
            pos = self._heads.get(user_id, 0) + 1
            self._heads[user_id] = pos
            entry = LogEntry(user_id, pos, now, payload, meta)
            log = self._logs.setdefault(user_id, deque())
            log.append(entry)
            self._trim(log, now)
            appended.append(entry)
        for entry in appended:
            for subscriber in self._subscribers:
                result = subscriber(entry)
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

    def _trim(self, log: deque[LogEntry], now: float) -> None:
        while len(log) > self.max_events or (
            len(log) > self.min_events and now - log[0].created > self.min_age
        ):
            log.popleft()

    async def head(self, user_id: str) -> int:
        return self._heads.get(user_id, 0)

    async def read(self, user_id: str, after: int, limit: int = 1000) -> ReadResult:
        log = self._logs.get(user_id)
        head = self._heads.get(user_id, 0)
        if not log:
            return ReadResult([], head, False, after < head)
        first = log[0].pos
        truncated = after + 1 < first
        start = max(0, after + 1 - first)
        entries = [log[i] for i in range(start, min(len(log), start + limit))]
        limited = start + limit < len(log)
        return ReadResult(entries, head, limited, truncated)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)
