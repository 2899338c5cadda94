"""Recycling database connections on every node (`POST /api/v4/database/recycle`).

Mattermost shortens `ConnMaxLifetime` to 10 s on the node that got the request and sleeps 12 s;
its pools keep their data sources. Here the node that gets the request closes every pooled
connection of every role at once (`Database.recycle`: connections in use close when they are
returned), then publishes `DatabaseRecycle` so every other node does the same. After a failover,
the next query of each node connects again, to whichever server the data sources now lead to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hubbub.cluster.bus import BusMessage, ClusterBus
from hubbub.store.db import Database

log = logging.getLogger("hubbub.store")


@dataclass(frozen=True)
class DatabaseRecycle(BusMessage, kind="database_recycle"):
    origin: str


class DatabaseRecycler:
    def __init__(self, db: Database, bus: ClusterBus, node_id: str) -> None:
        self.db = db
        self.bus = bus
        self.node_id = node_id
        bus.subscribe(DatabaseRecycle, self._on_recycle)

    async def recycle_everywhere(self) -> None:
        await self.db.recycle()
        await self.bus.publish(DatabaseRecycle(self.node_id))

    async def _on_recycle(self, message: DatabaseRecycle) -> None:
        if message.origin != self.node_id:
            await self.db.recycle()
