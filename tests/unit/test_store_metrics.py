"""`mattermost_db_store_time{method,success}`: each connection a store call opens is timed under
the name of the function that opened it, failed when its block raised (store/db.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from hubbub.config import load_config
from hubbub.store.db import Database
from hubbub.store.monitor import DatabaseMetrics


class Directory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def find(self) -> None:
        async with self.db.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def save(self, fail: bool) -> None:
        async with self.db.write() as conn:
            await conn.execute(text("SELECT 1"))
            if fail:
                raise LookupError("no such thing")

    async def fresh(self) -> None:
        async with self.db.read_primary() as conn:
            await conn.execute(text("SELECT 1"))


async def test_store_calls_are_timed_by_caller_and_outcome(tmp_path: Path) -> None:
    settings = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "x.db")})
    registry = CollectorRegistry()
    db = Database(settings.settings.SqlSettings, metrics=DatabaseMetrics(registry))
    store = Directory(db)
    try:
        await store.find()
        await store.find()
        await store.save(fail=False)
        with pytest.raises(LookupError):
            await store.save(fail=True)
        await store.fresh()
    finally:
        await db.close()

    def count(method: str, success: str) -> float:
        labels = {"method": method, "success": success}
        return registry.get_sample_value("mattermost_db_store_time_count", labels) or 0.0

    assert count("Directory.find", "true") == 2
    assert count("Directory.save", "true") == 1 and count("Directory.save", "false") == 1
    assert count("Directory.fresh", "true") == 1
    assert (registry.get_sample_value("mattermost_db_master_connections_total") or 0) >= 3
