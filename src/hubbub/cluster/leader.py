"""The leader lease: a row in `leases`, taken and renewed by one atomic UPDATE; a fencing token.

Choosing: whoever's UPDATE ... WHERE expires_at < now OR holder = me succeeds holds the lease
(the row is inserted on first use). The token grows by one every time the holder changes, so a
higher token always means a later leader.

Acting: being leader a moment ago proves nothing (a paused process wakes up still believing it
leads). Work done as leader therefore runs `run_as_leader(conn, token)` inside its own transaction:
it fails unless the token is still the current one. On PostgreSQL it also locks the lease row
(FOR SHARE) until that transaction ends, so a takeover waits for work already checked to commit;
on SQLite the write transaction excludes every other writer anyway.

`Leader` renews every `renew_seconds`; after each successful renewal it runs its duties with the
token. `is_leader()` is a local answer: true only until the lease it last obtained would run out,
measured on the monotonic clock from before the renewal was sent.

A duty is an async callable taking the token, written by the component that owns the work
(`ClusterCleanup.run` in `topology.py`, `Presence.expire_orphans` in `realtime/presence.py`) and
handed to the leader by the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.ids import now_ms
from hubbub.lifecycle import Component
from hubbub.store.db import Database
from hubbub.store.tables import leases
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")

LEADER = "leader"

Duty = Callable[[int], Awaitable[Any]]
LeadershipListener = Callable[[bool, "int | None"], Awaitable[None]]


class NotLeader(Exception):
    """Work was attempted with a fencing token that is no longer current."""


async def run_as_leader(conn: AsyncConnection, token: int, name: str = LEADER) -> None:
    """Raises `NotLeader` unless `token` is still lease `name`'s token.

    Call it first thing inside the write transaction (`Database.write()`) that does the work.
    """
    stmt = select(leases.c.token, leases.c.holder).where(leases.c.name == name)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=True)
    row = (await conn.execute(stmt)).first()
    if row is None or row.token != token:
        current = None if row is None else f"{row.token} (held by {row.holder})"
        raise NotLeader(f"fencing token {token} for lease {name!r} is stale; current: {current}")


async def current_holder(db: Database, name: str = LEADER, now: int | None = None) -> str | None:
    """Who holds lease `name` right now, by the database (None when it has lapsed)."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
            )
        ).first()
    if row is None or row.expires_at < (now_ms() if now is None else now):
        return None
    return str(row.holder)


class Leader(Component):
    """Takes and keeps lease `name` for `holder` (the node id)."""

    def __init__(
        self,
        db: Database,
        holder: str,
        *,
        name: str = LEADER,
        duties: Sequence[Duty] = (),
        listeners: Sequence[LeadershipListener] = (),
        lease_seconds: float = 15.0,
        renew_seconds: float = 5.0,
        clock: Callable[[], int] = now_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if renew_seconds >= lease_seconds:
            raise ValueError("the lease must last longer than the renewal interval")
        self.db = db
        self.holder = holder
        self.name = name
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.clock = clock
        self.monotonic = monotonic
        self.duties = tuple(duties)
        self.listeners = tuple(listeners)
        self._token: int | None = None
        self._valid_until = 0.0
        self._was_leader = False
        self._task: asyncio.Task[None] | None = None

    def is_leader(self) -> bool:
        return self._token is not None and self.monotonic() < self._valid_until

    def fencing_token(self) -> int | None:
        """The token to carry into leader work, or None when this node is not the leader."""
        return self._token if self.is_leader() else None

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the lease; true when this node holds it afterwards."""
        sent_at = self.monotonic()
        now = self.clock()
        expires = now + int(self.lease_seconds * 1000)
        c = leases.c
        async with self.db.write() as conn:
            token = (
                await conn.execute(
                    update(leases)
                    .where((c.name == self.name) & or_(c.expires_at < now, c.holder == self.holder))
                    .values(
                        holder=self.holder,
                        token=case((c.holder == self.holder, c.token), else_=c.token + 1),
                        expires_at=expires,
                    )
                    .returning(c.token)
                )
            ).scalar_one_or_none()
            if token is None:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                token = (
                    await conn.execute(
                        insert(leases)
                        .values(name=self.name, holder=self.holder, token=1, expires_at=expires)
                        .on_conflict_do_nothing(index_elements=["name"])
                        .returning(c.token)
                    )
                ).scalar_one_or_none()
        if token is None:
            self._token = None
            return False
        self._token = int(token)
        self._valid_until = sent_at + self.lease_seconds
        return True

    async def release(self) -> None:
        """Gives the lease up at once (on a clean stop), so another node need not wait it out."""
        token, self._token = self._token, None
        if token is None:
            return
        async with self.db.write() as conn:
            await conn.execute(
                update(leases)
                .where(
                    (leases.c.name == self.name)
                    & (leases.c.holder == self.holder)
                    & (leases.c.token == token)
                )
                .values(expires_at=0)
            )
        await self._changed()

    @contextlib.asynccontextmanager
    async def fenced(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction in which this node's token has been checked against the table."""
        token = self.fencing_token()
        if token is None:
            raise NotLeader(f"{self.holder} does not hold lease {self.name!r}")
        async with self.db.write() as conn:
            await run_as_leader(conn, token, self.name)
            yield conn

    async def renew(self) -> None:
        """One round: take or renew the lease, report changes, and run the duties if leading."""
        try:
            await self.try_acquire()
        except Exception:
            # The database is unreachable: leadership lapses on its own when the lease would.
            log.warning("could not renew the leader lease", exc_info=True)
        await self._changed()
        token = self.fencing_token()
        if token is None:
            return
        for duty in self.duties:
            try:
                await duty(token)
            except NotLeader as exc:
                log.info("leader duty skipped: leadership moved on", extra={"error": str(exc)})
            except Exception:
                log.exception("leader duty failed", extra={"duty": _duty_name(duty)})

    async def _changed(self) -> None:
        leading = self.is_leader()
        if leading == self._was_leader:
            return
        self._was_leader = leading
        if leading:
            log.info(
                "took lease" if self.name != LEADER else "became cluster leader",
                extra={"lease": self.name, "node_id": self.holder, "token": self._token},
            )
        else:
            log.info(
                "lost lease" if self.name != LEADER else "no longer cluster leader",
                extra={"lease": self.name, "node_id": self.holder},
            )
        for listener in self.listeners:
            try:
                await listener(leading, self._token if leading else None)
            except Exception:
                log.exception("leadership listener failed")

    async def start(self) -> None:
        await self.renew()
        self._task = asyncio.create_task(self._run(), name=f"lease-{self.name}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            await self.renew()

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        try:
            await self.release()
        except Exception:
            log.warning("could not release the leader lease", exc_info=True)


def _duty_name(duty: Duty) -> str:
    return str(getattr(duty, "__qualname__", None) or repr(duty))
