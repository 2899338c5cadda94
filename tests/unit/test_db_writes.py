"""`Database.write` on SQLite: one shared connection, kept usable across failed, cancelled and
broken writes; after-commit callbacks only for committed writes, in commit order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.config import load_config
from hubbub.store.consistency import reading_as
from hubbub.store.db import Database, DatabaseBusy, after_commit
from tests.support.wait import wait_until_async


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "w.db")})
    database = Database(config.settings.SqlSettings)
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    try:
        yield database
    finally:
        await database.close()


async def insert(conn: AsyncConnection, x: int) -> None:
    await conn.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": x})


async def rows(db: Database) -> list[int]:
    async with db.read() as conn:
        return [r.x for r in await conn.execute(text("SELECT x FROM t ORDER BY x"))]


async def test_writes_share_one_connection_and_a_failed_one_leaves_nothing(db: Database) -> None:
    async with db.write() as conn:
        first = conn
        await insert(conn, 1)
    with pytest.raises(RuntimeError, match="boom"):
        async with db.write() as conn:
            assert conn is first
            await insert(conn, 2)
            raise RuntimeError("boom")
    async with db.write() as conn:
        assert conn is first
        assert conn.in_transaction()
        await insert(conn, 3)
    assert await rows(db) == [1, 3]


async def test_after_commit_runs_for_committed_writes_only_in_commit_order(db: Database) -> None:
    ran: list[str] = []

    def note(conn: AsyncConnection, name: str) -> None:
        async def callback() -> None:
            ran.append(name)

        after_commit(conn, callback)

    async def write(name: str, fail: bool = False) -> None:
        async with db.write() as conn:
            await insert(conn, 1)
            note(conn, name)
            if fail:
                raise ValueError(name)

    for name in ("a", "b"):
        async with db.write() as conn:
            note(conn, name)
    with pytest.raises(ValueError):
        await write("rolled-back", fail=True)
    # The callbacks of a rolled-back write are dropped, not left for the next commit on the
    # shared connection.
    await asyncio.gather(write("c"), write("d"), write("e"))
    assert ran == ["a", "b", "c", "d", "e"]


async def test_a_write_cancelled_mid_transaction_is_rolled_back(db: Database) -> None:
    inserted = asyncio.Event()

    async def stuck() -> None:
        async with db.write() as conn:
            await insert(conn, 7)
            inserted.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await asyncio.wait_for(inserted.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.write() as conn:
        await insert(conn, 8)
    assert await rows(db) == [8]


async def test_a_connection_whose_rollback_fails_is_replaced(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.write() as conn:
        broken = conn

    async def failing_rollback(self: AsyncConnection) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(AsyncConnection, "rollback", failing_rollback)
    with pytest.raises(ValueError, match="fails, then so does the rollback"):
        async with db.write() as conn:
            await insert(conn, 1)
            raise ValueError("fails, then so does the rollback")
    monkeypatch.undo()
    assert broken.closed
    async with db.write() as conn:
        assert conn is not broken
        await insert(conn, 2)
    assert await rows(db) == [2]


async def test_a_cancelled_write_stays_cancelled_when_the_connection_is_invalid(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query cancelled mid-flight leaves the connection invalid: `info` and the rollback
    raise. The CancelledError must still be what comes out, or the cancelled task would carry
    on (a leader duty cancelled at shutdown kept a node from ever exiting)."""

    def invalid(self: AsyncConnection) -> Any:
        raise PendingRollbackError("invalid transaction")

    async def failing_rollback(self: AsyncConnection) -> None:
        raise PendingRollbackError("invalid transaction")

    with pytest.raises(asyncio.CancelledError):
        async with db.write() as conn:
            await insert(conn, 1)
            monkeypatch.setattr(AsyncConnection, "info", property(invalid))
            monkeypatch.setattr(AsyncConnection, "rollback", failing_rollback)
            raise asyncio.CancelledError()
    monkeypatch.undo()
    async with db.write() as conn:
        await insert(conn, 2)
    assert await rows(db) == [2]


async def test_close_closes_the_shared_connection(tmp_path: Path) -> None:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "c.db")})
    database = Database(config.settings.SqlSettings)
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    await database.close()
    assert conn.closed


async def test_wal_is_checkpointed_in_the_background_once_started(
    db: Database, tmp_path: Path
) -> None:
    """Commits only append to the WAL (the automatic checkpoint is a distant backstop); the
    database file itself grows only when the background checkpoint copies the WAL into it."""
    main_file = tmp_path / "w.db"
    async with db.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE blobs (b BLOB)")
    for _ in range(20):
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO blobs (b) VALUES (:b)"), {"b": b"x" * 8000})
    size = main_file.stat().st_size
    assert size < 100_000, "the writes reached the database file without a checkpoint"
    await db.start()
    await wait_until_async(lambda: main_file.stat().st_size > size, 10, "a checkpoint")
    assert main_file.stat().st_size >= 160_000


async def test_a_request_waits_for_the_writer_at_most_the_bound_then_is_busy(
    tmp_path: Path,
) -> None:
    config = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "b.db"),
            "MM_SQLSETTINGS_MAXCONNECTIONWAITMILLISECONDS": "200",
        },
    )
    db = Database(config.settings.SqlSettings)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def long_write() -> None:
        async with db.write():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(long_write())
    try:
        await holding.wait()
        with reading_as("u1", None), pytest.raises(DatabaseBusy):
            async with db.write():
                pass
        # Background work (no request) waits its turn instead.
        background = asyncio.create_task(_write_one(db))
        await asyncio.sleep(0.3)
        assert not background.done()
        release.set()
        await background
    finally:
        release.set()
        await holder
        await db.close()


async def _write_one(db: Database) -> None:
    async with db.write() as conn:
        await conn.exec_driver_sql("SELECT 1")


def _sized_db(path: Path, idle: int, most: int) -> Database:
    """A SQLite database at `path` with `MaxIdleConns` and `MaxOpenConns` set."""
    config = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DATASOURCE": str(path),
            "MM_SQLSETTINGS_MAXIDLECONNS": str(idle),
            "MM_SQLSETTINGS_MAXOPENCONNS": str(most),
        },
    )
    return Database(config.settings.SqlSettings)


def test_the_sqlite_pool_is_sized_by_the_sql_settings(tmp_path: Path) -> None:
    pool: Any = _sized_db(tmp_path / "p.db", 7, 40).primary.pool
    # Every connection opened is kept (opening one starts a thread): MaxOpenConns in all.
    assert (pool.size(), pool._max_overflow, pool._timeout) == (40, 0, 3.0)


async def test_sqlite_read_connections_opened_under_load_are_kept(tmp_path: Path) -> None:
    """40 reads at once open 40 connections (40 aiosqlite threads); 40 more at once open none:
    with only `MaxIdleConns` (5 here) kept, the second burst opened 35 again."""
    db = _sized_db(tmp_path / "k.db", 5, 100)
    opened = 0

    def count(*_: Any) -> None:
        nonlocal opened
        opened += 1

    event.listen(db.primary.sync_engine, "connect", count)
    all_in = asyncio.Event()
    inside = 0

    async def read() -> None:
        nonlocal inside
        async with db.read() as conn:
            await conn.exec_driver_sql("SELECT 1")
            inside += 1
            if inside == 40:
                all_in.set()
            await asyncio.wait_for(all_in.wait(), 10)  # every read holds its connection

    try:
        await asyncio.gather(*(read() for _ in range(40)))
        assert opened == 40
        all_in.clear()
        inside = 0
        await asyncio.gather(*(read() for _ in range(40)))
        assert opened == 40
    finally:
        await db.close()
