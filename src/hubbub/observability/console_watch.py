"""Tells the operator console when its picture of the cluster changes, over the websocket.

A leader duty (one node in the cluster runs it, every `ClusterSettings.HeartbeatSeconds`): it
compares each node's state and reasons and the leader, as `/admin` draws them, with the last
time, and on a change sends `hubbub_console_changed` to the connected system admins (those whose
roles grant `manage_system`). The console redraws at once; its slow poll stays as a fallback (a
single node has no leader, and the event is ephemeral: best effort, like typing).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from hubbub.cluster.connections import ConnectionRegistry
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.observability.console import OperatorConsole
from hubbub.services.permissions import Permissions
from hubbub.store.db import Database
from hubbub.store.tables import users

log = logging.getLogger("hubbub.console")

CONSOLE_CHANGED = "hubbub_console_changed"


class ConsoleWatch:
    def __init__(
        self,
        console: OperatorConsole,
        db: Database,
        registry: ConnectionRegistry,
        permissions: Permissions,
        publisher: EventPublisher,
    ) -> None:
        self.console = console
        self.db = db
        self.registry = registry
        self.permissions = permissions
        self.publisher = publisher
        self._last: Any = None

    async def run(self, _token: int) -> None:
        picture = await self.console.picture()
        if picture == self._last:
            return
        self._last = picture
        for user_id in await self._admins_online():
            await self.publisher.publish(
                Event(
                    CONSOLE_CHANGED,
                    {"leader": picture["leader"], "nodes": len(picture["nodes"])},
                    Broadcast(user_id=user_id),
                    ephemeral=True,
                )
            )

    async def _admins_online(self) -> list[str]:
        online = await self.registry.connected_users()
        if not online:
            return []
        async with self.db.read_primary() as conn:
            rows = (
                await conn.execute(
                    select(users.c.id, users.c.roles).where(
                        users.c.id.in_(sorted(online)), users.c.delete_at == 0
                    )
                )
            ).all()
        return [
            row.id
            for row in rows
            if await self.permissions.granted(row.roles.split(), "manage_system")
        ]
