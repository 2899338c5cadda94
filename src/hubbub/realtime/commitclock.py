"""Did an event commit before a connection's hello? Exactly, from PostgreSQL's own snapshots.

A fresh `hello` tells the client to refetch over REST, and that refetch sees everything committed
before the hello. The same event must then not also come over the websocket, which can happen
when it is appended to the log late: the outbox sweeper republishes events that were committed
while Redis was down or after Redis lost its data, and events of a node that died between its
commit and its append (DESIGN §4 invariant 8).

Node clocks cannot decide this (they drift, and a commit's wall time is not its visibility
order). PostgreSQL can: each write transaction records its id in the event (`meta.xid`, see
`hubbub.cluster.outbox.transaction_id`), and the hello takes a snapshot
(`pg_current_snapshot()`: `xmin:xmax:xip,...`) after the hub has read the log head. An event
committed before the hello iff its transaction is visible in that snapshot: `xid < xmin`, or
`xid < xmax` and not in progress (`xip`). Such an event is skipped by the connection (counted in
`hubbub_websocket_stale_events_total`) in live delivery and in a resume's replay, as the
snapshot is part of the connection's record.

The snapshot must be taken after the caller's log read, so callers never share an earlier
query; a burst of hellos shares the next one (one query for all who asked before it started).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from hubbub.store.db import Database

_SNAPSHOT = text("SELECT pg_current_snapshot()::text")


@dataclass(frozen=True, slots=True)
class Snapshot:
    xmin: int
    xmax: int
    in_progress: frozenset[int]

    def committed(self, xid: int) -> bool:
        """Whether transaction `xid` had committed when the snapshot was taken (an event is
        only published after its transaction committed, so "finished" means "committed")."""
        if xid < self.xmin:
            return True
        return xid < self.xmax and xid not in self.in_progress

    @classmethod
    def parse(cls, raw: str) -> Snapshot | None:
        """`xmin:xmax:xip1,xip2` as PostgreSQL prints a `pg_snapshot`; None for ""."""
        if not raw:
            return None
        xmin, xmax, xip = raw.split(":", 2)
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))


class CommitClock:
    """No clock: nothing is ever known to have committed before a hello (SQLite, one node:
    its log never republishes)."""

    async def snapshot(self) -> str:
        return ""


class PostgresCommitClock(CommitClock):
    """Snapshots from the primary, one query for every hello that asked before it started."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[str] | None = None
        self.queries = 0

    async def snapshot(self) -> str:
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().create_task(self._take(pending))
        return await asyncio.shield(pending)

    async def _take(self, pending: asyncio.Future[str]) -> None:
        async with self._lock:
            # From here on, a caller starts the next batch: this query starts after every
            # caller that joined this one.
            if self._pending is pending:
                self._pending = None
            try:
                self.queries += 1
                async with self.db.write() as conn:
                    value = str((await conn.execute(_SNAPSHOT)).scalar_one())
            except BaseException as exc:
                if not pending.done():
                    pending.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                pending.exception()  # retrieved: callers that left need not see it logged
                return
            if not pending.done():
                pending.set_result(value)


def commit_clock(db: Database) -> CommitClock:
    return CommitClock() if db.is_sqlite else PostgresCommitClock(db)
