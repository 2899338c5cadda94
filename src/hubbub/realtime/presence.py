"""Presence from websocket connections: online while connected and active, away when idle,
offline when the last connection anywhere closes. A status the user set by hand wins."""

from __future__ import annotations

import logging
from typing import Any

from hubbub.services.statuses import StatusesService

log = logging.getLogger("hubbub.realtime")


class Presence:
    def __init__(self, statuses: StatusesService) -> None:
        self.statuses = statuses

    async def _current(self, user_id: str) -> dict[str, Any]:
        found = await self.statuses.get_many([user_id])
        return found[0] if found else {"status": "offline", "manual": False}

    async def _set_automatic(self, user_id: str, status: str) -> None:
        # Presence must never break a connection: a failure here is logged and skipped.
        try:
            current = await self._current(user_id)
            if current.get("manual") or current.get("status") == status:
                return
            await self.statuses.set_status(user_id, status, manual=False)
        except Exception:
            log.exception("presence update failed", extra={"user_id": user_id, "status": status})

    async def connected(self, user_id: str) -> None:
        await self._set_automatic(user_id, "online")

    async def disconnected(self, user_id: str) -> None:
        await self._set_automatic(user_id, "offline")

    async def activity(self, user_id: str, active: bool, manual: bool) -> None:
        await self._set_automatic(user_id, "online" if active else "away")

    async def statuses_of(self, user_ids: list[str]) -> dict[str, Any]:
        found = await self.statuses.get_many(user_ids)
        return {s["user_id"]: s["status"] for s in found}
