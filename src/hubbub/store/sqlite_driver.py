"""SQLite through aiosqlite with one trip to the connection's thread per statement.

aiosqlite keeps each SQLite connection in a thread of its own; every call crosses to that thread
and back (a queue put, a future, a wake-up of the event loop). SQLAlchemy's adapter makes one
crossing per DBAPI call: create the cursor, execute, fetch the rows, close the cursor. With the
transaction's begin and commit that came to about 20 crossings for one `POST /api/v4/posts`
(issue 17), each a few dozen microseconds of event-loop work and a context switch.

Here a statement, its rows and its cursor's end are one function run in the thread: a cursor
object on the event-loop side only keeps what the statement returned (rows, description,
rowcount, lastrowid). The pieces of aiosqlite and SQLAlchemy this leans on are private
(`aiosqlite.Connection._execute` and `_conn`, SQLAlchemy's `AsyncAdapt_aiosqlite_*`), pinned in
requirements/ and checked by tests/unit/test_sqlite_driver.py; `sqlite_module()` is handed to
`create_async_engine(module=...)` by `hubbub.store.engines.sqlite_engine`.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

_Result = tuple[Any, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any) -> _Result:
    """In the connection's thread: execute, read every row, close the cursor."""
    cursor = conn.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(conn: sqlite3.Connection, operation: str, seq_of_parameters: Any) -> _Result:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, seq_of_parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement runs in one trip to the thread (`_run`)."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # no cursor lives in the thread
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # nothing is open in the thread

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._trip(_run, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._trip(_run_many, operation, seq_of_parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, fn: Any, operation: Any, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapt: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        if adapt.runs_inline():
            result: _Result = fn(connection._conn, operation, parameters)
        else:
            async with adapt._execute_mutex:
                result = await connection._execute(fn, connection._conn, operation, parameters)
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Also skips the trip of a rollback when no transaction is open: the pool rolls back every
    connection it gets back, and a read (Python's sqlite3 opens no transaction for a SELECT)
    paid one more crossing for nothing. `in_transaction` reads SQLite's autocommit flag, which
    is safe from this thread while no statement runs on the connection (none does: the pool
    resets a connection no one is using).

    `inline`: statements, the commit and the rollback run on the calling (event loop) thread,
    with no trip at all. `Database` sets it on the SQLite write connection once its
    `BEGIN IMMEDIATE` has taken the write lock (in the thread, since it may wait for another
    process), and clears it before the next writer's turn: under the write lock, in WAL mode
    with `synchronous=NORMAL`, a statement or a commit never waits for anyone and does not
    fsync, so it takes what SQLite's work takes. Through the thread, each statement of a write
    transaction waited for its turn on a busy event loop while holding the single writer's lock
    (issue 17: writes queued behind one another for seconds at 500 simulated users)."""

    __slots__ = ("inline",)
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.inline = False

    def rollback(self) -> None:
        inner: sqlite3.Connection | None = self._connection._connection
        if inner is not None and inner.in_transaction:
            if self.runs_inline():
                self._inline(inner.rollback)
            else:
                super().rollback()

    def commit(self) -> None:
        inner: sqlite3.Connection | None = self._connection._connection
        if inner is not None and self.runs_inline():
            self._inline(inner.commit)
        else:
            super().commit()

    def runs_inline(self) -> bool:
        """Whether work on this connection runs on the calling thread now (`inline`, and no
        trip to its thread under way)."""
        return self.inline and not self._execute_mutex.locked()

    def _inline(self, action: Any) -> None:
        try:
            action()
        except Exception as error:
            self._handle_exception(error)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI shim, handing out `OneTripConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's own shim does
        return OneTripConnection(self, await_(connection))


def sqlite_module() -> OneTripDBAPI:
    return OneTripDBAPI(aiosqlite, sqlite3)
