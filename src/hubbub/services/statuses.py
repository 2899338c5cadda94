"""User statuses (online, away, dnd, offline), with Mattermost's rules.

A status set by hand (`manual`) wins over automatic ones: presence from websockets or posting
(`manual=False`) never overrides it. `online` is never manual. `dnd` remembers the status before
it and may end at `dnd_end_time` (seconds); an expired dnd reads as that earlier status, as
Mattermost's expiry job would have set it. A user without a row is offline.

`status_change` goes to the user whose status changed, as Mattermost's `BroadcastStatus` does
(other clients poll `POST /users/status/ids`); it is ephemeral, so it may be dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.batching import Batcher
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.ids import now_ms
from hubbub.store.db import Database
from hubbub.store.tables import statuses

ONLINE, AWAY, DND, OFFLINE = "online", "away", "dnd", "offline"
STATUSES = (ONLINE, AWAY, DND, OFFLINE)
# Mattermost's `StatusMinUpdateTime`: an unchanged status is rewritten only to refresh an older
# `last_activity_at`, so posting many messages does not write a status row each time.
MIN_UPDATE_MS = 120_000

# Built once: `POST /users/status/ids` is among the most frequent requests (the apps ask for the
# status of every user they meet), and a constant statement's cache key is memoized.
_STATUSES_BY_IDS = select(statuses).where(
    statuses.c.user_id.in_(bindparam("p_ids", expanding=True))
)


def status_json(user_id: str, row: Row[Any] | Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {
            "user_id": user_id,
            "status": OFFLINE,
            "manual": False,
            "last_activity_at": 0,
            "dnd_end_time": 0,
        }
    s = row._mapping if isinstance(row, Row) else row
    status, manual, dnd_end = s["status"], s["manual"], s["dnd_end_time"]
    if status == DND and dnd_end and dnd_end <= int(time.time()):
        status, manual, dnd_end = s["prev_status"] or ONLINE, False, 0
    return {
        "user_id": user_id,
        "status": status,
        "manual": bool(manual),
        "last_activity_at": s["last_activity_at"],
        "dnd_end_time": dnd_end,
    }


def _changes_automatically(current: dict[str, Any], status: str) -> bool:
    """Whether an automatic `status` applies over `current` (`status_json`)."""
    return not current["manual"] and current["status"] != status


def _new_row(user_id: str, status: str, last_activity_at: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "status": status,
        "manual": False,
        "last_activity_at": last_activity_at,
        "dnd_end_time": 0,
        "prev_status": "",
    }


# An automatic status over an existing row: as `set_status` writes it (prev_status kept).
_AUTOMATIC_UPDATE = (
    update(statuses)
    .where(statuses.c.user_id == bindparam("b_user"))
    .values(
        status=bindparam("b_status"),
        manual=False,
        last_activity_at=bindparam("b_last"),
        dnd_end_time=0,
    )
)


def truncate_to_minute(seconds: int) -> int:
    """Mattermost keeps dnd end times on whole minutes."""
    return seconds - seconds % 60


class StatusesService:
    def __init__(self, db: Database, settings: Settings, events: EventPublisher) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        # SQLite (one node, no replica): the status reads that arrive together share one
        # statement. The web app asks for the statuses of every user a `typing` or `posted`
        # event names, so a burst of events makes a burst of these (issue 17). On PostgreSQL
        # each request reads on its own, routed by its user's read-your-writes position.
        self._reads: Batcher[str, None, Row[Any] | None] | None = (
            Batcher(self._read_many, None) if db.is_sqlite else None
        )

    async def get(self, user_id: str) -> dict[str, Any]:
        return (await self.get_many([user_id]))[0]

    async def automatic_present_users(self, limit: int = 5000) -> list[str]:
        """Users whose status is online or away and was not set by hand."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(statuses.c.user_id)
                .where(statuses.c.status.in_(("online", "away")), ~statuses.c.manual)
                .limit(limit)
            )
            return list(rows.scalars())

    async def get_many(self, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Statuses in the order asked (duplicates dropped); unknown users are offline."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        if self._reads is not None:
            rows = await self._reads.submit_many(ids, None)
            return [status_json(user_id, row) for user_id, row in zip(ids, rows, strict=True)]
        found = await self._read_many(dict.fromkeys(ids))
        return [status_json(user_id, found.get(user_id)) for user_id in ids]

    async def _read_many(self, batch: dict[str, None]) -> dict[str, Row[Any]]:
        async with self.db.read() as conn:
            rows = (await conn.execute(_STATUSES_BY_IDS, {"p_ids": list(batch)})).all()
        return {r.user_id: r for r in rows}

    async def set_status(
        self,
        user_id: str,
        status: str,
        manual: bool,
        dnd_end_time: int = 0,
        current: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sets a status and returns the resulting one (unchanged when an automatic change meets
        a manual status). Publishes `status_change` when the status value changed.

        `current` is the user's status (`status_json`) if the caller has just read it, as a post
        does inside its own transaction: it saves reading it again for the checks that make most
        calls no-ops. A change is still decided on the row as read in the write transaction."""
        if status not in STATUSES:
            raise AppError(
                "api.context.invalid_param.app_error", "Invalid or missing status parameter.", 400
            )
        # Cheap checks on a read connection first; the write transaction re-checks the rule.
        if current is None:
            [current] = await self.get_many([user_id])
        if current["manual"] and not manual:
            return current
        unchanged = current["status"] == status and current["manual"] == (
            manual and status != ONLINE
        )
        if status != DND and unchanged and now_ms() - current["last_activity_at"] < MIN_UPDATE_MS:
            return current
        async with self.db.write() as conn:
            row = (
                await conn.execute(select(statuses).where(statuses.c.user_id == user_id))
            ).first()
            current = status_json(user_id, row)
            if row is not None and current["manual"] and not manual:
                return current
            now = now_ms()
            values: dict[str, Any] = {
                "status": status,
                "manual": manual and status != ONLINE,
                "last_activity_at": current["last_activity_at"],
                "dnd_end_time": 0,
                "prev_status": row.prev_status if row is not None else "",
            }
            if status in (ONLINE, OFFLINE):
                values["last_activity_at"] = now
            if status == DND:
                values["manual"] = True
                values["dnd_end_time"] = truncate_to_minute(max(0, dnd_end_time))
                if current["status"] != DND:
                    values["prev_status"] = current["status"]
            await self._save(conn, user_id, values, exists=row is not None)
            result = status_json(user_id, {**values, "user_id": user_id})
            if result["status"] != current["status"]:
                await self.events.publish(
                    Event(
                        "status_change",
                        {"status": result["status"], "user_id": user_id},
                        Broadcast(user_id=user_id),
                        ephemeral=True,
                    ),
                    conn,
                )
        return result

    async def set_automatic_many(self, wanted: Mapping[str, str]) -> dict[str, None]:
        """Automatic statuses (presence: online, away, offline) for many users in one write
        transaction, by the rules of `set_status(..., manual=False)`: a status set by hand wins
        and an unchanged status is left alone. Publishes `status_change` for each change.

        What a burst of websockets opening (or closing) at once costs: one read, and one
        transaction of three statements, instead of a read and a transaction per user
        (hubbub/realtime/presence.py batches the calls)."""
        if any(status == DND for status in wanted.values()):
            raise ValueError("dnd is never automatic")
        before = {s["user_id"]: s for s in await self.get_many(wanted)}
        todo = [u for u, st in wanted.items() if _changes_automatically(before[u], st)]
        if not todo:
            return {}
        async with self.db.write() as conn:
            rows = {
                r.user_id: r
                for r in await conn.execute(select(statuses).where(statuses.c.user_id.in_(todo)))
            }
            now = now_ms()
            updates: list[dict[str, Any]] = []
            inserts: list[dict[str, Any]] = []
            changed: list[tuple[str, str]] = []
            for user_id in todo:
                status = wanted[user_id]
                row = rows.get(user_id)
                current = status_json(user_id, row)
                if not _changes_automatically(current, status):
                    continue
                last = now if status in (ONLINE, OFFLINE) else current["last_activity_at"]
                if row is None:
                    inserts.append(_new_row(user_id, status, last))
                else:
                    updates.append({"b_user": user_id, "b_status": status, "b_last": last})
                changed.append((user_id, status))
            if updates:
                await conn.execute(_AUTOMATIC_UPDATE, updates)
            if inserts:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(statuses), inserts)
                except IntegrityError:  # some were created concurrently: one by one
                    for values in inserts:
                        user_id = values.pop("user_id")
                        await self._save(conn, user_id, values, exists=False)
            for user_id, status in changed:
                await self.events.publish(
                    Event(
                        "status_change",
                        {"status": status, "user_id": user_id},
                        Broadcast(user_id=user_id),
                        ephemeral=True,
                    ),
                    conn,
                )
        return {}

    @staticmethod
    async def _save(
        conn: AsyncConnection, user_id: str, values: dict[str, Any], exists: bool
    ) -> None:
        if exists:
            await conn.execute(
                update(statuses).where(statuses.c.user_id == user_id).values(**values)
            )
            return
        try:
            async with conn.begin_nested():
                await conn.execute(insert(statuses).values(user_id=user_id, **values))
        except IntegrityError:  # created concurrently: this write wins
            await conn.execute(
                update(statuses).where(statuses.c.user_id == user_id).values(**values)
            )
