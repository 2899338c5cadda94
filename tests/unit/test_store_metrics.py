"""`mattermost_db_store_time{method,success}`: each connection a store call opens is timed under
the name of the function that opened it, failed when its block raised (store/db.py)."""

from __future__ import annotations

import asyncio
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


class Holder:
    """A write that keeps SQLite's writer until told to let go."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self) -> None:
        async with self.db.write() as conn:
            await conn.execute(text("SELECT 1"))
            self.holding.set()
            await self.release.wait()


async def test_sqlite_writer_wait_and_hold_are_timed_by_store_method(tmp_path: Path) -> None:
    settings = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "x.db")})
    registry = CollectorRegistry()
    db = Database(settings.settings.SqlSettings, metrics=DatabaseMetrics(registry))
    holder, store = Holder(db), Directory(db)
    try:
        holding = asyncio.create_task(holder.hold())
        await asyncio.wait_for(holder.holding.wait(), 5)
        waiting = asyncio.create_task(store.save(fail=False))
        # The save queues behind the holder for as long as the holder keeps the writer.
        await asyncio.sleep(0.05)  # the hold being measured, not synchronization
        assert not waiting.done()
        holder.release.set()
        await asyncio.wait_for(asyncio.gather(holding, waiting), 5)
        with pytest.raises(LookupError):
            await store.save(fail=True)
    finally:
        await db.close()

    def sample(name: str, method: str) -> float:
        return registry.get_sample_value(name, {"method": method}) or 0.0

    assert sample("hubbub_db_writer_hold_seconds_count", "Holder.hold") == 1
    assert sample("hubbub_db_writer_hold_seconds_sum", "Holder.hold") >= 0.05
    # Both saves were timed, the failed one too; the first one's wait covers the hold.
    assert sample("hubbub_db_writer_wait_seconds_count", "Directory.save") == 2
    assert sample("hubbub_db_writer_wait_seconds_sum", "Directory.save") >= 0.05
