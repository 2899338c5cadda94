"""Presence from websocket connections: online while connected and active, away when idle,
offline when the last connection anywhere closes. A status the user set by hand wins.

`expire_orphans` is a leader duty: users shown online or away with no live connection on any
node (their node died without closing them) go offline."""

from __future__ import annotations

import logging
from typing import Any

from hubbub.cluster.connections import ConnectionRegistry
from hubbub.services.statuses import StatusesService

log = logging.getLogger("hubbub.realtime")


class Presence:
    def __init__(self, statuses: StatusesService, registry: ConnectionRegistry) -> None:
        self.statuses = statuses
        self.registry = registry

    async def expire_orphans(self, token: int) -> None:
        """Leader duty (see the module docstring); `token` is unused: going offline twice is
        harmless, so this work needs no fencing."""
        present = await self.statuses.automatic_present_users()
        if not present:
            return
        connected = await self.registry.connected_users()
        for user_id in present:
            # Checked again one by one: the user may have connected since the snapshot.
            if user_id not in connected and await self.registry.live_connections(user_id) == 0:
                await self.disconnected(user_id)

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
