"""Shared pieces of the job tests: two database pools on one fresh database (two nodes), a clock
moved by hand, and waiting for a condition with a deadline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hubbub.config import LoadedConfig
from hubbub.store.db import Database
from hubbub.store.migrate import migrate
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def databases(node_config: LoadedConfig) -> AsyncIterator[tuple[Database, Database]]:
    first = Database(node_config.settings.SqlSettings)
    second = Database(node_config.settings.SqlSettings)
    await migrate(first)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
