"""Presence from websocket connections: online while connected and active, away when idle,
offline when the last connection anywhere closes. A status the user set by hand wins.

`expire_orphans` is a leader duty: users shown online or away with no live connection on any
node (their node died without closing them) go offline.

Automatic changes are written in batches (`hubbub.batching`): the users whose sockets opened or
closed while the previous batch was being written go together in one transaction, so a burst of
1,000 connections costs a few transactions rather than 1,000 queued on the writer. One batch runs
at a time and a user's newest wish wins within a batch, so the last change always lands last."""

from __future__ import annotations

import logging
from typing import Any

from hubbub.batching import Batcher
from hubbub.cluster.connections import ConnectionRegistry
from hubbub.services.statuses import StatusesService

log = logging.getLogger("hubbub.realtime")


class Presence:
    def __init__(self, statuses: StatusesService, registry: ConnectionRegistry) -> None:
        self.statuses = statuses
        self.registry = registry
        self.writes: Batcher[str, str, None] = Batcher(statuses.set_automatic_many, None)

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

    async def _set_automatic(self, user_id: str, status: str) -> None:
        # Presence must never break a connection: a failure here is logged and skipped.
        try:
            await self.writes.submit(user_id, status)
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
