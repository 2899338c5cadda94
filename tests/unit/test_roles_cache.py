"""The role cache of `RolesService` against a scratch SQLite database: two services on one
database stand for two nodes. A patch on one is seen by the other at once when they share the
bus (the `roles_changed` message), and not when they do not (so the first test can fail)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.bus import MemoryBus
from hubbub.cluster.events import Event, EventPublisher
from hubbub.config import load_config
from hubbub.services.roles import RolesService
from hubbub.store.db import Database
from hubbub.store.migrate import migrate


class DroppedEvents(EventPublisher):
    async def publish(self, event: Event, conn: AsyncConnection | None = None) -> None:
        pass


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "r.db")})
    database = Database(config.settings.SqlSettings)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


async def _take_create_post(node: RolesService) -> None:
    role = await node.by_name("channel_user")
    await node.patch(role, [p for p in role.permissions if p != "create_post"])


async def test_a_patch_reaches_the_other_nodes_cache_through_the_bus(db: Database) -> None:
    bus = MemoryBus("shared")
    a, b = RolesService(db, DroppedEvents(), bus), RolesService(db, DroppedEvents(), bus)
    assert "create_post" in await b.permissions_of(["channel_user"])  # b has them cached
    await _take_create_post(a)
    assert "create_post" not in await b.permissions_of(["channel_user"])
    assert "create_post" not in await a.permissions_of(["channel_user"])


async def test_without_the_message_the_other_node_keeps_its_copy(db: Database) -> None:
    a = RolesService(db, DroppedEvents(), MemoryBus("a"))
    b = RolesService(db, DroppedEvents(), MemoryBus("b"))
    assert "create_post" in await b.permissions_of(["channel_user"])
    await _take_create_post(a)
    assert "create_post" in await b.permissions_of(["channel_user"])  # stale until told
    b.invalidate()
    assert "create_post" not in await b.permissions_of(["channel_user"])
