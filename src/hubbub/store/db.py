"""Database engines and connection routing.

`Database` owns one engine per role. Writes and read-after-write reads go to the primary; reads
may later go to replicas, search to search replicas (the cluster issue adds routing; the methods
already separate the query classes). SQLite serializes writers inside the process so that
concurrent requests queue instead of failing with "database is locked"; since only one write runs
at a time, they share one connection, kept open (no pool checkout and reset per write).

After-commit callbacks run under the SQLite writer lock, which is what keeps them in commit order.
They are not moved out of it: with the in-memory event log of a single SQLite node, the publish
they do never yields to the event loop, so releasing the lock first would let nothing else run
sooner and would only add a queue between commit and publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hubbub.config.settings import SqlConfig
from hubbub.lifecycle import Component
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.store")

# Query parameters of a Mattermost/lib-pq data source that asyncpg does not understand.
_DROP_PARAMS = {"sslmode", "connect_timeout", "binary_parameters", "application_name"}


def engine_url(driver: str, source: str) -> str:
    """Turns a Mattermost `DataSource` into an SQLAlchemy URL."""
    if driver == "sqlite":
        if source.startswith("sqlite"):
            return source
        if source == ":memory:":
            return "sqlite+aiosqlite:///:memory:"
        return "sqlite+aiosqlite:///" + str(Path(source).expanduser().resolve())
    parts = urlsplit(source)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError(f"a postgres DataSource must start with postgres://, got {parts.scheme!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _DROP_PARAMS]
    sslmode = dict(parse_qsl(parts.query)).get("sslmode")
    if sslmode in {"require", "verify-ca", "verify-full"}:
        query.append(("ssl", sslmode))
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))


WAL_BACKSTOP_PAGES = 10_000  # ~40 MB of WAL before a commit checkpoints by itself
WAL_CHECKPOINT_SECONDS = 1.0


def make_engine(driver: str, source: str, settings: SqlConfig) -> AsyncEngine:
    url = engine_url(driver, source)
    if driver == "sqlite":
        if ":memory:" not in url:
            Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": settings.QueryTimeout})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run in the background (Database.start); this is only a backstop for
            # processes that never start it (the CLI). A commit that crosses the threshold does
            # the checkpoint, fsync included, while every other write waits for it.
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            cursor.execute(f"PRAGMA busy_timeout={settings.QueryTimeout * 1000}")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=max(1, min(settings.MaxIdleConns, settings.MaxOpenConns)),
        max_overflow=max(0, settings.MaxOpenConns - settings.MaxIdleConns),
        pool_recycle=settings.ConnMaxLifetimeMilliseconds / 1000
        if settings.ConnMaxLifetimeMilliseconds
        else -1,
        pool_pre_ping=True,
        connect_args={"command_timeout": settings.QueryTimeout},
    )


AfterCommit = Callable[[], Awaitable[None]]


_AFTER_COMMIT = "hubbub.after_commit"


def after_commit(conn: AsyncConnection, callback: AfterCommit) -> None:
    """Runs `callback` once the transaction open on `conn` (from `Database.write`) commits."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _forget_after_commit(conn: AsyncConnection) -> None:
    """Drops the callbacks of a transaction that will not commit. An invalidated connection (a
    query cancelled mid-flight) refuses even `info`; its info dictionary is discarded with it."""
    with contextlib.suppress(Exception):
        conn.info.pop(_AFTER_COMMIT, None)


async def _run_after_commit(conn: AsyncConnection) -> None:
    callbacks: list[AfterCommit] = conn.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            log.exception("after-commit callback failed")


async def _begin_immediate(conn: AsyncConnection) -> None:
    """Takes SQLite's write lock at once. Through the aiosqlite connection: one trip to its
    thread, where `exec_driver_sql` makes three (cursor, execute, close)."""
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the SQLite write connection is closed")
    await driver.execute_fetchall("BEGIN IMMEDIATE")


class Database(Component):
    """The primary engine plus (later) replicas; hands out connections per query class."""

    def __init__(self, settings: SqlConfig) -> None:
        self.settings = settings
        self.driver = settings.DriverName
        self.primary = make_engine(self.driver, settings.DataSource, settings)
        self._write_lock = asyncio.Lock() if self.driver == "sqlite" else None
        self._writer: AsyncConnection | None = None  # SQLite: the connection writes share
        self._checkpointer: asyncio.Task[None] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.driver == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the primary, committed when the block exits without an exception.

        Callbacks registered with `after_commit(conn, ...)` run right after the commit, in
        registration order (and, on SQLite, still under the writer lock, so in commit order).
        """
        if self._write_lock is None:
            async with self.primary.connect() as conn:
                await conn.begin()
                try:
                    yield conn
                except BaseException:
                    _forget_after_commit(conn)
                    # The caller's exception is what propagates: a cancelled query leaves the
                    # connection invalid and the rollback may fail too, and replacing a
                    # CancelledError with that error would make the cancelled task carry on
                    # (a leader duty cancelled at shutdown kept the node from exiting).
                    with contextlib.suppress(Exception):
                        await conn.rollback()
                    raise
                await conn.commit()
                await _run_after_commit(conn)
            return
        async with self._write_lock:
            conn = await self._sqlite_writer()
            try:
                await conn.begin()
                await _begin_immediate(conn)
                yield conn
                await conn.commit()
            except BaseException:
                _forget_after_commit(conn)
                try:
                    await conn.rollback()
                except Exception:
                    # Its state is unknown: the next write opens a new connection. The
                    # caller's exception propagates, as above.
                    self._writer = None
                    with contextlib.suppress(Exception):
                        await conn.close()
                raise
            await _run_after_commit(conn)

    async def _sqlite_writer(self) -> AsyncConnection:
        """The shared SQLite write connection (called under the writer lock)."""
        conn = self._writer
        if conn is not None and not conn.closed and not conn.invalidated:
            return conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        self._writer = conn = await self.primary.connect()
        return conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for ordinary reads."""
        async with self.primary.connect() as conn:
            yield conn

    @asynccontextmanager
    async def search(self) -> AsyncIterator[AsyncConnection]:
        """A connection for full-text search queries (routed to search replicas in a cluster)."""
        async with self.primary.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def start(self) -> None:
        """Starts background maintenance: on SQLite, WAL checkpoints off the write path."""
        if (
            self.is_sqlite
            and self._checkpointer is None
            and ":memory:" not in str(self.primary.url)
        ):
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_wal())

    async def _checkpoint_wal(self) -> None:
        """Copies the WAL into the database file about once a second, on a connection of its
        own (its own aiosqlite thread), so the fsync that comes with it never holds up a
        commit. PASSIVE: it takes what it can without waiting for readers or the writer."""
        while True:
            await asyncio.sleep(WAL_CHECKPOINT_SECONDS)
            try:
                async with self.primary.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("WAL checkpoint failed", exc_info=True)

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._checkpointer is not None:
            await stop_task(self._checkpointer)
            self._checkpointer = None
        if self._write_lock is not None:
            async with self._write_lock:
                if self._writer is not None:
                    await self._writer.close()
                    self._writer = None
        await self.primary.dispose()
