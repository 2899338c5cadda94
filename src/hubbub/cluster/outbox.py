"""The event outbox: delivery of a committed change survives the death of the node that made it.

An event is written to the `outbox` table in the same transaction as its change. Right after the
commit the writing node appends it to the event log (idempotent by event id) and, in a batch a
moment later, marks it published. If the node dies in between, any node's sweeper finds the row
still unpublished after a grace period and appends it again; the event log ignores an id it has
already seen, so a republish never duplicates (DESIGN §4 invariant 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.eventlog import EventLog, EventMeta
from hubbub.ids import new_id, now_ms
from hubbub.store.db import Database
from hubbub.store.tables import outbox

log = logging.getLogger("hubbub.cluster")

# Fault injection for tests: the process dies right after committing an event of this name,
# before publishing it (a real crash at the worst moment, not a mock).
CRASH_AFTER_COMMIT = os.environ.get("HUBBUB_TEST_CRASH_AFTER_COMMIT", "")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    recipients: list[str]
    body: bytes
    meta: EventMeta


def meta_to_json(meta: EventMeta) -> dict[str, Any]:
    return {
        "event": meta.event,
        "ephemeral": meta.ephemeral,
        "connection_id": meta.connection_id,
        "omit_connection_id": meta.omit_connection_id,
    }


def meta_from_json(data: dict[str, Any]) -> EventMeta:
    return EventMeta(
        event=str(data.get("event", "")),
        ephemeral=bool(data.get("ephemeral")),
        connection_id=str(data.get("connection_id", "")),
        omit_connection_id=str(data.get("omit_connection_id", "")),
    )


class Outbox:
    def __init__(
        self,
        db: Database,
        eventlog: EventLog,
        grace_seconds: float = 2.0,
        sweep_seconds: float = 1.0,
        keep_seconds: float = 3600.0,
    ) -> None:
        self.db = db
        self.eventlog = eventlog
        self.grace_ms = int(grace_seconds * 1000)
        self.sweep_seconds = sweep_seconds
        self.keep_ms = int(keep_seconds * 1000)
        self._published: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.republished = 0

    async def add(
        self,
        conn: AsyncConnection,
        recipients: list[str],
        body: bytes,
        meta: EventMeta,
        channel_id: str = "",
        channel_seq: int = 0,
    ) -> OutboxRow:
        """Records the event in the open transaction `conn`."""
        row = OutboxRow(new_id(), recipients, body, meta)
        await conn.execute(
            insert(outbox).values(
                id=row.id,
                create_at=now_ms(),
                channel_id=channel_id,
                channel_seq=channel_seq,
                recipients=recipients,
                body=body.decode(),
                meta=meta_to_json(meta),
                published_at=0,
            )
        )
        return row

    async def publish(self, row: OutboxRow) -> None:
        """Appends a committed row to the event log (called right after the commit)."""
        if CRASH_AFTER_COMMIT and row.meta.event == CRASH_AFTER_COMMIT:
            log.error("test fault injection: dying after commit, before publish")
            os._exit(137)
        await self.eventlog.append(row.recipients, row.body, row.meta, event_id=row.id)
        self._published.append(row.id)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self._flush()
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database or the event log is unreachable: try again next round.
                log.warning("outbox sweep failed", exc_info=True)

    async def _flush(self) -> None:
        done, self._published = self._published, []
        if not done:
            return
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_(done)).values(published_at=now_ms())
                )
        except Exception:
            self._published.extend(done)
            raise

    async def sweep(self) -> int:
        """Republishes rows left unpublished longer than the grace period; returns how many."""
        cutoff = now_ms() - self.grace_ms
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(outbox)
                    .where(outbox.c.published_at == 0, outbox.c.create_at < cutoff)
                    .order_by(outbox.c.channel_id, outbox.c.channel_seq, outbox.c.create_at)
                    .limit(500)
                )
            ).all()
        for r in rows:
            await self.eventlog.append(
                list(r.recipients), r.body.encode(), meta_from_json(r.meta), event_id=r.id
            )
            self._published.append(r.id)
        if rows:
            self.republished += len(rows)
            log.info("outbox republished events", extra={"count": len(rows)})
            await self._flush()
        async with self.db.write() as conn:
            await conn.execute(
                delete(outbox).where(
                    outbox.c.published_at > 0, outbox.c.create_at < now_ms() - self.keep_ms
                )
            )
        return len(rows)
