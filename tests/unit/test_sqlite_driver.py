"""hubbub's SQLite driver (hubbub/store/sqlite_driver.py): a statement in one trip to the
connection's thread, with the results SQLAlchemy expects of a cursor; and the private pieces of
aiosqlite and SQLAlchemy it leans on are there (named with the installed versions when an
upgrade moves one)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
import sqlalchemy
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from hubbub.config import load_config
from hubbub.store.db import Database
from hubbub.store.sqlite_driver import OneTripCursor

VERSIONS = f"aiosqlite {aiosqlite.__version__}, SQLAlchemy {sqlalchemy.__version__}"


def test_the_private_pieces_it_uses_are_there() -> None:
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute), VERSIONS
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property), VERSIONS
    assert "_thread" in inspect.getsource(aiosqlite.Connection.__init__), VERSIONS
    connection = sa_aiosqlite.AsyncAdapt_aiosqlite_connection
    assert connection._cursor_cls is sa_aiosqlite.AsyncAdapt_aiosqlite_cursor, VERSIONS
    assert hasattr(connection, "_handle_exception"), VERSIONS
    assert "_execute_mutex" in inspect.getsource(
        sa_aiosqlite.AsyncAdapt_aiosqlite_cursor._execute_async
    ), VERSIONS


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "d.db")})
    database = Database(config.settings.SqlSettings)
    async with database.write() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT UNIQUE)")
    try:
        yield database
    finally:
        await database.close()


async def test_rows_counts_ids_and_errors_come_back_as_sqlalchemy_expects(db: Database) -> None:
    async with db.write() as conn:
        raw = (await conn.get_raw_connection()).dbapi_connection
        assert isinstance(raw.cursor(), OneTripCursor)  # type: ignore[union-attr]
        inserted = await conn.execute(text("INSERT INTO t (x) VALUES ('a')"))
        assert inserted.lastrowid == 1 and inserted.rowcount == 1
        many = await conn.execute(
            text("INSERT INTO t (x) VALUES (:x)"), [{"x": "b"}, {"x": "c"}, {"x": "d"}]
        )
        assert many.rowcount == 3
        updated = await conn.execute(
            text("UPDATE t SET x = x || '!' WHERE x IN ('b', 'c')").bindparams()
        )
        assert updated.rowcount == 2
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT id, x FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!"), (4, "d")]
        assert (await conn.execute(text("SELECT x FROM t WHERE id > 10"))).all() == []
        one = await conn.execute(
            text("SELECT x FROM t WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)),
            {"ids": [1, 4]},
        )
        assert sorted(one.scalars()) == ["a", "d"]
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (x) VALUES ('a')"))
    with pytest.raises(OperationalError):
        async with db.read() as conn:
            await conn.execute(text("SELECT nope FROM t"))
    async with db.read() as conn:  # the pool's connections are still good
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 4
