"""Where each websocket connection's resume state lives, and who is connected (presence).

A connection's `seq` maps to positions in its user's event log through checkpoints: (seq of an
event sent, log position of that event), recorded about once a second and when the socket closes.
Between two checkpoints the mapping is deterministic (every log entry matching the connection got
the next seq), because a connection that drops an event records a checkpoint right after the drop.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field

from hubbub.lifecycle import Component

MAX_CHECKPOINTS = 64  # kept per connection record


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    pos: int


@dataclass
class ConnectionRecord:
    connection_id: str
    user_id: str
    epoch: str
    checkpoints: list[Checkpoint] = field(default_factory=list)  # oldest first
    updated: float = field(default_factory=time.time)
    live: bool = True  # a socket is attached right now
    # The PostgreSQL snapshot taken at the connection's hello (hubbub.realtime.commitclock):
    # events committed before it are skipped, live and in a resume's replay alike.
    snapshot: str = ""

    def best_checkpoint(self, seq: int) -> Checkpoint | None:
        """The newest checkpoint at or before `seq`."""
        best = None
        for cp in self.checkpoints:
            if cp.seq <= seq and (best is None or cp.seq >= best.seq):
                best = cp
        return best


class ConnectionRegistry(Component, abc.ABC):
    @abc.abstractmethod
    async def open(self, record: ConnectionRecord) -> None: ...

    @abc.abstractmethod
    async def checkpoint(self, connection_id: str, cp: Checkpoint) -> None: ...

    async def checkpoint_many(self, items: list[tuple[str, list[Checkpoint]]]) -> None:
        """Records checkpoints of many connections (in order, per connection); backends with
        round trips override it to batch them."""
        for connection_id, checkpoints in items:
            for cp in checkpoints:
                await self.checkpoint(connection_id, cp)

    @abc.abstractmethod
    async def detach(self, connection_id: str) -> None:
        """The socket closed; the record stays for resume until the retention window passes."""

    @abc.abstractmethod
    async def get(self, connection_id: str) -> ConnectionRecord | None: ...

    @abc.abstractmethod
    async def forget(self, connection_id: str) -> None: ...

    @abc.abstractmethod
    async def live_connections(self, user_id: str) -> int: ...

    @abc.abstractmethod
    async def connected_users(self) -> set[str]: ...


class MemoryConnectionRegistry(ConnectionRegistry):
    """The single-node registry. Live connections are indexed by user, and closed records are
    swept at most every `retention / 20` seconds, so opening, closing and presence checks cost
    O(1) per connection rather than a walk over every record."""

    def __init__(self, retention_seconds: float = 600) -> None:
        self.retention = retention_seconds
        self._records: dict[str, ConnectionRecord] = {}
        self._live: dict[str, set[str]] = {}  # user -> ids of live connections
        self._swept_at = 0.0

    def _expired(self, record: ConnectionRecord, now: float) -> bool:
        return not record.live and record.updated < now - self.retention

    def _expire(self) -> None:
        now = time.time()
        if now - self._swept_at < self.retention / 20:
            return
        self._swept_at = now
        for cid in [c for c, r in self._records.items() if self._expired(r, now)]:
            del self._records[cid]

    def _set_live(self, record: ConnectionRecord, live: bool) -> None:
        record.live = live
        ids = self._live.get(record.user_id)
        if live:
            if ids is None:
                ids = self._live[record.user_id] = set()
            ids.add(record.connection_id)
        elif ids is not None:
            ids.discard(record.connection_id)
            if not ids:
                del self._live[record.user_id]

    async def open(self, record: ConnectionRecord) -> None:
        self._expire()
        record.updated = time.time()
        self._records[record.connection_id] = record
        self._set_live(record, True)

    async def checkpoint(self, connection_id: str, cp: Checkpoint) -> None:
        record = self._records.get(connection_id)
        if record is not None:
            record.checkpoints.append(cp)
            del record.checkpoints[:-MAX_CHECKPOINTS]
            record.updated = time.time()

    async def checkpoint_many(self, items: list[tuple[str, list[Checkpoint]]]) -> None:
        now = time.time()
        for connection_id, checkpoints in items:
            record = self._records.get(connection_id)
            if record is not None and checkpoints:
                record.checkpoints.extend(checkpoints)
                del record.checkpoints[:-MAX_CHECKPOINTS]
                record.updated = now

    async def detach(self, connection_id: str) -> None:
        record = self._records.get(connection_id)
        if record is not None:
            self._set_live(record, False)
            record.updated = time.time()

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        self._expire()
        record = self._records.get(connection_id)
        if record is not None and self._expired(record, time.time()):
            del self._records[connection_id]
            return None
        return record

    async def forget(self, connection_id: str) -> None:
        record = self._records.pop(connection_id, None)
        if record is not None:
            self._set_live(record, False)

    async def live_connections(self, user_id: str) -> int:
        return len(self._live.get(user_id, ()))

    async def connected_users(self) -> set[str]:
        return set(self._live)
