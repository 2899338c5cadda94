"""Database engines and connection routing.

`Database` owns one engine per role (`store/engines.py`) and hands out a connection per query
class: writes on the primary, reads on a replica that has replayed the reader's own writes
(`store/consistency.py`), search on search replicas, then replicas, then the primary; replicas
are watched by `store/monitor.py` (docs/design/database.md).

SQLite serializes writers inside the process so that concurrent requests queue instead of failing
with "database is locked"; since only one write runs at a time, they share one connection, kept
open (no pool checkout and reset per write).

After-commit callbacks run under the SQLite writer lock, which is what keeps them in commit order.
They are not moved out of it: with the in-memory event log of a single SQLite node, the publish
they do never yields to the event loop, so releasing the lock first would let nothing else run
sooner and would only add a queue between commit and publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hubbub.config.settings import SqlConfig
from hubbub.lifecycle import Component
from hubbub.store.consistency import (
    PositionStore,
    ReadContext,
    current_reader,
    pinned_to_primary,
)
from hubbub.store.engines import (
    Engines,
    QueryClass,
    ReplicaEngine,
    Role,
    engine_url,
    engines_differ,
    make_engine,
    parse_lsn,
)
from hubbub.store.monitor import REPLAY_POSITION, DatabaseMetrics, ReplicaMonitor
from hubbub.store.sqlite_driver import OneTripConnection
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.store")

__all__ = ["Database", "DatabaseBusy", "after_commit", "engine_url", "make_engine"]

WAL_CHECKPOINT_SECONDS = 1.0

_WRITE_POSITION = text("SELECT pg_current_wal_insert_lsn()::text")


def store_method() -> str:
    """Who opened the connection (`PostsService.create`): what Mattermost's `method` label of
    `mattermost_db_store_time` names (`PostStore.Save`). Frames: this function, the connection
    method's generator, contextlib's `__aenter__`, the caller."""
    return sys._getframe(3).f_code.co_qualname


class DatabaseBusy(Exception):
    """No pooled connection, or on SQLite no turn at the writer, within
    `SqlSettings.MaxConnectionWaitMilliseconds`: the node is overloaded. The API answers 503
    `api.context.server_busy.app_error` with Retry-After (hubbub.api.errors)."""


async def _checkout(engine: AsyncEngine, budget: float | None = None) -> AsyncConnection:
    """A pooled connection. With `budget` (PostgreSQL: `SqlSettings.QueryTimeout`), the caller
    waits at most that long for the whole checkout (the pool's pre-ping of an idle connection,
    its invalidation, a new connect). On a primary that hangs (connections open, nothing
    answered, as behind a partition that drops packets) the pre-ping alone waits QueryTimeout
    and closing the dead connection 2 s more, even once cancelled, so the checkout runs in its
    own task and is left to finish its cleanup by itself (`asyncio.wait`, not `wait_for`, which
    would wait for that cleanup); a connection it still gets is closed."""
    try:
        if budget is None:
            return await engine.connect()
        task = asyncio.get_running_loop().create_task(engine.connect().start())
        try:
            done, _ = await asyncio.wait({task}, timeout=budget)
        except BaseException:
            _abandon(task)
            raise
        if not done:
            _abandon(task)
            raise CheckoutTimeout(
                f"no database connection within SqlSettings.QueryTimeout ({budget:g} s)"
            )
        return task.result()
    except PoolTimeout as exc:
        raise DatabaseBusy(f"no database connection free: {exc}") from exc


def _abandon(task: asyncio.Task[AsyncConnection]) -> None:
    """Cancels a checkout nobody waits for any more; whatever it ends with is disposed of."""

    def dispose(done: asyncio.Future[AsyncConnection]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        close = asyncio.ensure_future(done.result().close())
        _ABANDONED.add(close)
        close.add_done_callback(_ABANDONED.discard)
        close.add_done_callback(lambda t: t.cancelled() or t.exception())

    task.cancel()
    task.add_done_callback(dispose)
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)


_ABANDONED: set[asyncio.Future[Any]] = set()  # strong references until they finish


class CheckoutTimeout(TimeoutError):
    """The database did not hand out a working connection within `SqlSettings.QueryTimeout`."""


@asynccontextmanager
async def _connection(
    engine: AsyncEngine, budget: float | None = None
) -> AsyncIterator[AsyncConnection]:
    """`engine.connect()` as a context, with a pool that stays dry translated to DatabaseBusy."""
    conn = await _checkout(engine, budget)
    try:
        yield conn
    finally:
        await asyncio.shield(conn.close())


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


def _run_inline(conn: AsyncConnection) -> OneTripConnection | None:
    """Has the SQLite write connection run its statements on the event loop's thread
    (`OneTripConnection.inline`); returns it, for the caller to turn that off again, even if
    `conn` has been closed meanwhile."""
    try:
        raw = conn.sync_connection.connection.dbapi_connection if conn.sync_connection else None
    except Exception:
        return None
    if not isinstance(raw, OneTripConnection):
        return None
    raw.inline = True
    return raw


async def _share_position(positions: PositionStore | None, user_id: str, lsn: int) -> None:
    if positions is None:
        return
    try:
        await positions.record(user_id, lsn)
    except Exception as exc:
        log.warning("read-your-writes position not shared", extra={"error": str(exc)})


class Database(Component):
    """The engines of every role (`store/engines.py`) and the connection per query class.

    `write()` is a transaction on the primary. `read()` and `search()` are routed: inside a
    request (`store/consistency.py: reading_as`) to a replica in rotation that has replayed the
    reader's last write, else to the primary; outside a request, to the primary. `read_primary()`
    is a read that must see the latest commit.
    """

    def __init__(
        self,
        settings: SqlConfig,
        *,
        metrics: DatabaseMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.driver = settings.DriverName
        self.engines = Engines(settings)
        self.metrics = metrics or DatabaseMetrics()
        self.monitor = ReplicaMonitor(
            lambda: self.engines,
            self.metrics,
            interval=settings.ReplicaMonitorIntervalSeconds,
            max_lag_bytes=settings.ReplicaMaxLagBytes,
            max_lag_seconds=settings.ReplicaMaxLagSeconds,
        )
        self._round_robin = itertools.count()
        self._write_lock = asyncio.Lock() if self.driver == "sqlite" else None
        self._writer: AsyncConnection | None = None  # SQLite: the connection writes share
        self._checkpointer: asyncio.Task[None] | None = None

    @property
    def primary(self) -> AsyncEngine:
        return self.engines.primary

    @property
    def is_sqlite(self) -> bool:
        return self.driver == "sqlite"

    @property
    def _budget(self) -> float | None:
        """How long a PostgreSQL checkout may take (`_checkout`); SQLite connects locally."""
        return None if self.is_sqlite else float(self.settings.QueryTimeout)

    @property
    def has_replicas(self) -> bool:
        return bool(self.engines.all_replicas)

    @asynccontextmanager
    async def write(self, method: str | None = None) -> AsyncIterator[AsyncConnection]:
        """A transaction on the primary, committed when the block exits without an exception
        (`_write`), timed as `method` or else as its caller's store method."""
        name = method or store_method()
        with self.metrics.store_call(name):
            async with self._write(name) as conn:
                yield conn

    @asynccontextmanager
    async def _write(self, method: str) -> AsyncIterator[AsyncConnection]:
        """A transaction on the primary, committed when the block exits without an exception.

        Callbacks registered with `after_commit(conn, ...)` run right after the commit, in
        registration order (and, on SQLite, still under the writer lock, so in commit order).
        Before them, the commit's WAL position is recorded for the request's user
        (read-your-writes); the callbacks themselves read from the primary.
        """
        if self._write_lock is None:
            self.metrics.served(QueryClass.WRITE, Role.PRIMARY)
            async with _connection(self.primary, self._budget) as conn:
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
                reader = current_reader()
                if reader is not None and self.has_replicas:
                    await self._note_write(conn, reader)
                with pinned_to_primary():
                    await _run_after_commit(conn)
            return
        self.metrics.served(QueryClass.WRITE, Role.PRIMARY)
        asked = time.perf_counter()
        async with self._writer_turn(self._write_lock):
            turn = time.perf_counter()
            try:
                async with self._sqlite_transaction() as conn:
                    yield conn
            finally:
                self.metrics.writer_turn(method, turn - asked, time.perf_counter() - turn)

    @asynccontextmanager
    async def _sqlite_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on SQLite's writer connection, the caller holding the turn;
        its after-commit callbacks run before the turn is given back (commit order)."""
        conn = await self._sqlite_writer()
        inline: OneTripConnection | None = None
        try:
            await conn.begin()
            await _begin_immediate(conn)
            inline = _run_inline(conn)
            yield conn
            await conn.commit()
        except BaseException:
            _forget_after_commit(conn)
            try:
                await conn.rollback()
            except Exception:
                # Its state is unknown: the next write opens a new connection. The
                # caller's exception propagates, as on PostgreSQL (`_write`).
                self._writer = None
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        finally:
            if inline is not None:
                inline.inline = False
        await _run_after_commit(conn)

    @asynccontextmanager
    async def _writer_turn(self, lock: asyncio.Lock) -> AsyncIterator[None]:
        """SQLite's single writer. A request waits for its turn at most
        `MaxConnectionWaitMilliseconds`, then gets DatabaseBusy (503) instead of queueing
        behind a backlog it would only lengthen; background work (jobs, presence, the
        checkpoints of websockets) waits as long as it takes."""
        if current_reader() is None:
            await lock.acquire()
        else:
            try:
                async with asyncio.timeout(self.settings.MaxConnectionWaitMilliseconds / 1000):
                    await lock.acquire()
            except TimeoutError:
                raise DatabaseBusy("the SQLite writer is busy") from None
        try:
            yield
        finally:
            lock.release()

    async def _note_write(self, conn: AsyncConnection, reader: ReadContext) -> None:
        """Records the position just past this commit for the request's user."""
        try:
            lsn = parse_lsn(await conn.scalar(_WRITE_POSITION))
        except Exception as exc:
            log.warning("write position unknown", extra={"error": str(exc)})
            reader.wrote(1 << 62)  # unknown: this request reads from the primary
            return
        reader.wrote(lsn)
        if reader.user_id:
            await _share_position(reader.positions, reader.user_id, lsn)

    def affects(self, conn: AsyncConnection, *user_ids: str) -> None:
        """This write, by someone else, takes something away from these users (a membership, a
        role, their account): once it commits, their reads on every node wait for it as if they
        had written it themselves (read-your-writes), so no permission check of theirs is
        decided on a replica that has not replayed it yet. Without replicas, nothing to do."""
        reader = current_reader()
        if self.is_sqlite or not self.has_replicas or reader is None or not user_ids:
            return
        positions = reader.positions

        async def share() -> None:
            try:
                lsn = parse_lsn(await conn.scalar(_WRITE_POSITION))
            except Exception as exc:
                log.warning("write position unknown", extra={"error": str(exc)})
                return
            for user_id in user_ids:
                await _share_position(positions, user_id, lsn)

        after_commit(conn, share)

    async def note_outside_write(self) -> None:
        """The request's write was committed by a batch that ran outside the request
        (`hubbub/batching.py`), so `_write` could not record it: record the primary's position
        now, which is past that commit, for the request's user."""
        reader = current_reader()
        if reader is None or self.is_sqlite or not self.has_replicas:
            return
        try:
            async with self.primary.connect() as conn:
                await self._note_write(conn, reader)
        except Exception as exc:
            log.warning("write position unknown", extra={"error": str(exc)})
            reader.wrote(1 << 62)  # unknown: this request reads from the primary

    async def note_hello(self, user_id: str, positions: PositionStore) -> None:
        """A fresh websocket hello for `user_id`: its refetch must see every commit so far."""
        if self.is_sqlite or not self.has_replicas:
            return
        try:
            async with self.primary.connect() as conn:
                lsn = parse_lsn(await conn.scalar(_WRITE_POSITION))
        except Exception as exc:
            log.warning("hello position unknown", extra={"error": str(exc)})
            return
        await _share_position(positions, user_id, lsn)

    async def _sqlite_writer(self) -> AsyncConnection:
        """The shared SQLite write connection (called under the writer lock)."""
        conn = self._writer
        if conn is not None and not conn.closed and not conn.invalidated:
            return conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        self._writer = conn = await _checkout(self.primary)
        return conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for ordinary reads (a fresh-enough replica when there is one)."""
        with self.metrics.store_call(store_method()):
            async with self._routed(QueryClass.READ) as conn:
                yield conn

    @asynccontextmanager
    async def search(self) -> AsyncIterator[AsyncConnection]:
        """A connection for full-text search: search replicas, then replicas, then primary."""
        with self.metrics.store_call(store_method()):
            async with self._routed(QueryClass.SEARCH) as conn:
                yield conn

    @asynccontextmanager
    async def read_primary(self) -> AsyncIterator[AsyncConnection]:
        """A read that must see the latest commit."""
        with self.metrics.store_call(store_method()):
            self.metrics.served(QueryClass.FRESH, Role.PRIMARY)
            async with _connection(self.primary, self._budget) as conn:
                yield conn

    def _rotation(self, query_class: QueryClass) -> list[ReplicaEngine]:
        engines = self.engines
        turn = next(self._round_robin)
        groups = [engines.replicas]
        if query_class is QueryClass.SEARCH:
            groups.insert(0, engines.search_replicas)
        out: list[ReplicaEngine] = []
        for group in groups:
            live = [r for r in group if r.state.in_rotation]
            if live:
                k = turn % len(live)
                out += live[k:] + live[:k]
        return out

    async def _replica_connection(
        self, replica: ReplicaEngine, need: int
    ) -> AsyncConnection | None:
        """A connection to `replica` if it has replayed up to `need`, else None."""
        try:
            conn = await _checkout(replica.engine, self._budget)
        except Exception as exc:
            self.monitor.report_failure(replica, exc)
            return None
        state = replica.state
        if need and state.replay_lsn < need and not state.promoted:
            try:
                replayed = parse_lsn(await conn.scalar(REPLAY_POSITION))
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await conn.close()
                self.monitor.report_failure(replica, exc)
                return None
            state.replay_lsn = max(state.replay_lsn, replayed)
            if replayed < need:
                await conn.close()
                return None
            await conn.rollback()  # the check's implicit transaction; the caller starts fresh
        return conn

    async def _acquire(
        self, query_class: QueryClass
    ) -> tuple[AsyncConnection, ReplicaEngine | None]:
        reader = current_reader()
        if reader is not None and self.has_replicas and not reader.pinned:
            need = await reader.min_lsn()
            if need >= 0:
                for replica in self._rotation(query_class):
                    conn = await self._replica_connection(replica, need)
                    if conn is not None:
                        return conn, replica
        try:
            return await _checkout(self.primary, self._budget), None
        except Exception:
            # No primary: reads carry on from any replica that answers (the freshest data
            # there is until a new primary takes over).
            for replica in self._rotation(query_class):
                conn = await self._replica_connection(replica, 0)
                if conn is not None:
                    return conn, replica
            raise

    @asynccontextmanager
    async def _routed(self, query_class: QueryClass) -> AsyncIterator[AsyncConnection]:
        conn, replica = await self._acquire(query_class)
        role = Role.PRIMARY if replica is None else replica.role
        reader = current_reader()
        if reader is None or reader.pinned:
            # Not a request's read (background work, session lookups, event delivery): the
            # primary, always; counted apart so `read` is the routable share.
            query_class = QueryClass.FRESH
        else:
            reader.routed[role] = reader.routed.get(role, 0) + 1
        self.metrics.served(query_class, role)
        try:
            yield conn
        except DBAPIError as exc:
            if replica is not None and exc.connection_invalidated:
                self.monitor.report_failure(replica, exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def ping(self) -> None:
        async with self.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def status(self) -> dict[str, Any]:
        """The roles and their health, for the cluster status and the operator console."""
        return self.monitor.status()

    async def reconfigure(self, settings: SqlConfig) -> bool:
        """Applies a reloaded `SqlSettings`; True when the engines were replaced (a data
        source or a pool setting changed). In-flight queries finish on the old engines."""
        self.monitor.configure(
            interval=settings.ReplicaMonitorIntervalSeconds,
            max_lag_bytes=settings.ReplicaMaxLagBytes,
            max_lag_seconds=settings.ReplicaMaxLagSeconds,
        )
        old = self.engines
        self.settings = settings
        if self.is_sqlite or not engines_differ(old.settings, settings):
            return False
        self.engines = Engines(settings)
        self.metrics.recycles.inc()
        await old.dispose()
        await self._probe()
        return True

    async def recycle(self) -> None:
        """Closes every pooled connection (all roles): the next queries connect again, to
        whichever server the data sources now lead to (after a failover)."""
        if self.is_sqlite:
            return
        log.info("recycling database connections")
        self.metrics.recycles.inc()
        await self.engines.dispose()
        await self._probe()

    async def _probe(self) -> None:
        try:
            await self.monitor.probe_once()
        except Exception:
            log.warning("replica probe after a change failed", exc_info=True)

    async def start(self) -> None:
        """Starts background maintenance: replica monitoring (PostgreSQL), WAL checkpoints off
        the write path (SQLite)."""
        if not self.is_sqlite:
            await self.monitor.start()
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
        await self.monitor.stop()
        if self._checkpointer is not None:
            await stop_task(self._checkpointer)
            self._checkpointer = None
        if self._write_lock is not None:
            async with self._write_lock:
                if self._writer is not None:
                    await self._writer.close()
                    self._writer = None
        await self.engines.dispose()
