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
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable

from hubbub.store.sqlite_driver import OneTripConnection

Rows = list[Any]  # named tuples: `row.column` and unpacking, as SQLAlchemy's rows allow
Step = tuple[Executable, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    defaults: Mapping[str, Any]  # bind values carried by the statement itself
    processors: Mapping[str, Any]
    row: Callable[..., Any] | None  # makes one result row, None without any
    converters: tuple[Any, ...]  # per result column, None when the value is taken as it is


_COMPILED: dict[tuple[int, type[Dialect]], tuple[Executable, _Compiled]] = {}


def _compiled(statement: Executable, dialect: Dialect) -> _Compiled:
    key = (id(statement), type(dialect))
    found = _COMPILED.get(key)
    if found is not None and found[0] is statement:
        return found[1]
    compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
    if compiled.post_compile_params:
        raise ValueError(f"a statement with expanding parameters cannot be pipelined: {compiled}")
    sql, names = str(compiled), compiled.positiontup
    if compiled.literal_execute_params:
        # Constants rendered into the SQL at execution (an aggregate's separator): they do not
        # depend on the parameters, so they are rendered once, here.
        expanded = compiled._process_parameters_for_postcompile(
            compiled.construct_params(_check=False, _no_postcompile=True)
        )
        sql, names = expanded.statement, expanded.positiontup
    if names is None:
        raise ValueError(f"the dialect is not positional: {dialect.name}")
    columns = compiled._result_columns
    entry = _Compiled(
        sql=sql,
        names=tuple(names),
        defaults=compiled.construct_params(_check=False),
        processors=dict(compiled._bind_processors),
        row=_row_type([c.keyname for c in columns]) if columns else None,
        converters=tuple(c.type._cached_result_processor(dialect, None) for c in columns),
    )
    _COMPILED[key] = (statement, entry)  # the statement is kept alive with its id
    return entry


def _row_type(names: list[str]) -> Callable[..., Any]:
    row: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]  # names known at run time
    make: Callable[..., Any] = row._make
    return make


def _positional(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
    out = []
    for name in compiled.names:
        value = params[name] if name in params else compiled.defaults[name]
        process = compiled.processors.get(name)
        out.append(value if process is None or value is None else process(value))
    return tuple(out)


def _run_all(
    conn: sqlite3.Connection, batch: Sequence[tuple[str, tuple[Any, ...]]]
) -> list[list[tuple[Any, ...]]]:
    """In the connection's thread: every statement in order, with all its rows."""
    results: list[list[tuple[Any, ...]]] = []
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
            results.append(list(result) if result.returns_rows else [])
        return results
    dialect = conn.dialect
    compiled_steps = [_compiled(statement, dialect) for statement, _ in steps]
    batch = [
        (c.sql, _positional(c, params))
        for c, (_, params) in zip(compiled_steps, steps, strict=True)
    ]
    pooled = await conn.get_raw_connection()
    driver: Any = pooled.driver_connection
    if driver is None:
        raise RuntimeError("the SQLite connection is closed")
    adapted = pooled.dbapi_connection
    try:
        raw: list[list[tuple[Any, ...]]]
        if isinstance(adapted, OneTripConnection) and adapted.runs_inline():
            raw = _run_all(driver._conn, batch)  # the write connection holding the write lock
        else:
            raw = await driver._execute(_run_all, driver._conn, batch)
    except sqlite3.Error as error:
        raise DBAPIError.instance(
            "; ".join(sql for sql, _ in batch), None, error, sqlite3.Error
        ) from error
    return [_rows(c, found) for c, found in zip(compiled_steps, raw, strict=True)]


def _rows(compiled: _Compiled, found: list[tuple[Any, ...]]) -> Rows:
    make = compiled.row
    if make is None:
        return []
    converters = compiled.converters
    if not any(converters):
        return [make(row) for row in found]
    return [
        make(v if f is None or v is None else f(v) for f, v in zip(converters, row, strict=True))
        for row in found
    ]
