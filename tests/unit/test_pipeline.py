"""`hubbub.store.pipeline.execute_all` on SQLite: statements run in one trip to the connection's
thread, past SQLAlchemy, must write and read exactly what `conn.execute` would (JSON and boolean
parameters and results, constants rendered at execution, RETURNING), in one trip, and fail as
SQLAlchemy's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from hubbub.config import load_config
from hubbub.store.db import Database
from hubbub.store.pipeline import execute_all

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("props", JSON, nullable=False),
    Column("flag", Boolean, nullable=False),
)
INSERT = insert(things).values(
    id=bindparam("p_id", type_=Integer),
    name=bindparam("p_name", type_=String),
    props=bindparam("p_props", type_=JSON),
    flag=bindparam("p_flag", type_=Boolean),
)
RENAME = (
    update(things)
    .where(things.c.id == bindparam("p_id", type_=Integer))
    .values(name=things.c.name + "!")
    .returning(things.c.id, things.c.name, things.c.flag)
)
ALL = select(things).order_by(things.c.id)
NAMES = select(func.aggregate_strings(things.c.name, ",").label("names"))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "d.db")})
    database = Database(config.settings.SqlSettings)
    async with database.write() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.close()


def rows_of(found: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in found]


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts trips to aiosqlite's threads from now on (until `monkeypatch.undo()`)."""
    trips = [0]
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        trips[0] += 1
        return await real(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_the_same_rows_as_sqlalchemy_in_one_trip(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = {"p_id": 1, "p_name": "a", "p_props": {"k": [1, "x"]}, "p_flag": True}
    second = {"p_id": 2, "p_name": "b", "p_props": {}, "p_flag": False}
    async with db.write() as conn:
        trips = count_trips(monkeypatch)
        inserted, _, renamed, listed, names = await execute_all(
            conn,
            [(INSERT, first), (INSERT, second), (RENAME, {"p_id": 2}), (ALL, {}), (NAMES, {})],
        )
        # In the write transaction, which holds SQLite's write lock, they run on the event
        # loop's thread (OneTripConnection.inline): no trip at all.
        assert trips == [0]
        monkeypatch.undo()
        assert inserted == []
        assert rows_of(renamed) == [(2, "b!", False)]
        assert renamed[0].name == "b!" and renamed[0].flag is False
        expected = [(1, "a", {"k": [1, "x"]}, True), (2, "b!", {}, False)]
        assert rows_of(listed) == expected
        assert rows_of((await conn.execute(ALL)).all()) == expected
        assert listed[0].props == {"k": [1, "x"]} and listed[0].flag is True
        assert names[0].names == "a,b!"


async def test_outside_the_write_lock_in_one_trip(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.write() as conn:
        await execute_all(
            conn, [(INSERT, {"p_id": 1, "p_name": "a", "p_props": {}, "p_flag": True})]
        )
    async with db.read() as conn:
        trips = count_trips(monkeypatch)
        listed, names = await execute_all(conn, [(ALL, {}), (NAMES, {})])
        monkeypatch.undo()
    assert trips == [1]
    assert rows_of(listed) == [(1, "a", {}, True)] and names[0].names == "a"


async def test_an_error_is_sqlalchemys_and_rolls_the_transaction_back(db: Database) -> None:
    row = {"p_id": 1, "p_name": "a", "p_props": {}, "p_flag": True}
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await execute_all(conn, [(INSERT, row), (INSERT, {**row, "p_id": 2})])
    async with db.read() as conn:
        assert (await conn.execute(ALL)).all() == []


async def test_expanding_parameters_are_refused(db: Database) -> None:
    in_list = select(things.c.id).where(things.c.id.in_(bindparam("p_ids", expanding=True)))
    async with db.write() as conn:
        with pytest.raises(ValueError, match="expanding"):
            await execute_all(conn, [(in_list, {"p_ids": [1, 2]})])
