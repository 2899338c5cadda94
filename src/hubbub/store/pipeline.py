"""Several statements of one transaction, run back to back: on SQLite in one trip to the thread.

Issue 17: on the single SQLite node, each statement of `POST /api/v4/posts` cost about 50 µs of
crossing to aiosqlite's thread and 150 µs of SQLAlchemy's execution machinery (a greenlet, an
execution context, a cursor result), several times the SQLite work itself. `execute_all` takes
statements whose parameters are all known up front (a later one reads what an earlier one wrote
with SQL, not with Python) and, on SQLite, runs them one after the other in a single function in
the connection's thread, straight through `sqlite3`: one crossing and no per-statement machinery.
Elsewhere (PostgreSQL) it executes them in order on the connection, as the caller would have.

Each statement is compiled once for the connection's dialect and kept (statements given here are
module constants); its parameters go through the same bind processors (JSON, booleans) SQLAlchemy
would apply. Statements that need expanding parameters (`IN` lists) are refused: their SQL depends
on the parameters. A SQLite error comes back as SQLAlchemy's `DBAPIError` family, as from
`conn.execute`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable

Rows = list[tuple[Any, ...]]
Step = tuple[Executable, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    defaults: Mapping[str, Any]  # bind values carried by the statement itself
    processors: Mapping[str, Any]


_COMPILED: dict[tuple[int, type[Dialect]], tuple[Executable, _Compiled]] = {}


def _compiled(statement: Executable, dialect: Dialect) -> _Compiled:
    key = (id(statement), type(dialect))
    found = _COMPILED.get(key)
    if found is not None and found[0] is statement:
        return found[1]
    compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError(f"a statement with expanding parameters cannot be pipelined: {compiled}")
    if compiled.positiontup is None:
        raise ValueError(f"the dialect is not positional: {dialect.name}")
    entry = _Compiled(
        sql=str(compiled),
        names=tuple(compiled.positiontup),
        defaults=compiled.construct_params(_check=False),
        processors=dict(compiled._bind_processors),
    )
    _COMPILED[key] = (statement, entry)  # the statement is kept alive with its id
    return entry


def _positional(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
    out = []
    for name in compiled.names:
        value = params[name] if name in params else compiled.defaults[name]
        process = compiled.processors.get(name)
        out.append(value if process is None or value is None else process(value))
    return tuple(out)


def _run_all(conn: sqlite3.Connection, batch: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Rows]:
    """In the connection's thread: every statement in order, with all its rows."""
    results: list[Rows] = []
    for sql, params in batch:
        cursor = conn.cursor()
        try:
            try:
                cursor.execute(sql, params)
            except sqlite3.Error as error:
                error.add_note(sql)  # which statement of the batch failed
                raise
            results.append(cursor.fetchall() if cursor.description else [])
        finally:
            cursor.close()
    return results


async def execute_all(conn: AsyncConnection, steps: Sequence[Step]) -> list[Rows]:
    """Runs `steps` in order inside the transaction open on `conn`; the rows of each."""
    if conn.dialect.name != "sqlite":
        results: list[Rows] = []
        for statement, params in steps:
            result = await conn.execute(statement, dict(params))
            results.append([tuple(row) for row in result] if result.returns_rows else [])
        return results
    dialect = conn.dialect
    batch = []
    for statement, params in steps:
        compiled = _compiled(statement, dialect)
        batch.append((compiled.sql, _positional(compiled, params)))
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the SQLite connection is closed")
    try:
        rows: list[Rows] = await driver._execute(_run_all, driver._conn, batch)
        return rows
    except sqlite3.Error as error:
        raise DBAPIError.instance(
            "; ".join(sql for sql, _ in batch), None, error, sqlite3.Error
        ) from error
