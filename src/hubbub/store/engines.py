"""The engines of one node: the primary, the read replicas and the search replicas.

`Engines` is built from `SqlSettings` and replaced as a whole when a reloaded configuration
changes a data source (`Database.reconfigure`). Each replica carries a `ReplicaState` kept by the
monitor (`store/monitor.py`): whether it answers, how far it lags, and the WAL position it has
replayed, which read-your-writes compares with a user's last write (`store/consistency.py`).

Failover. A `DataSource` may list several hosts, as libpq does
(`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`); asyncpg tries them in order
and keeps the first that accepts writes. A pooled connection to a server that was demoted or shut
down answers SQLSTATE 25006 (read-only transaction) or 57P01 (terminated by the administrator);
SQLAlchemy would keep it, since the socket is still open. `_failover_errors` marks those errors,
and lost connections, as disconnects: SQLAlchemy then invalidates the whole pool, so the next
checkout connects again and lands on whichever host is now the primary.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hubbub.config.settings import SqlConfig
from hubbub.store.sqlite_driver import sqlite_module

log = logging.getLogger("hubbub.store")

WAL_BACKSTOP_PAGES = 10_000  # ~40 MB of WAL before a commit checkpoints by itself

# Query parameters of a Mattermost/lib-pq data source that asyncpg does not understand.
_DROP_PARAMS = {"sslmode", "connect_timeout", "binary_parameters", "application_name"}

# Errors after which a pooled connection cannot be trusted to reach the primary any more:
# read-only transaction (a demoted primary or a standby), admin/crash shutdown, cannot connect
# now (starting up or shutting down), and the connection-exception class.
FAILOVER_SQLSTATES = frozenset(
    {"25006", "57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}
)

# How long one attempt to connect may take (every host of a multi-host source together).
CONNECT_TIMEOUT_SECONDS = 5.0


class Role(enum.StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"
    SEARCH_REPLICA = "search_replica"


class QueryClass(enum.StrEnum):
    WRITE = "write"  # a transaction on the primary
    READ = "read"  # an ordinary read: a replica when it is fresh enough
    SEARCH = "search"  # full-text search: search replicas, then replicas, then the primary
    FRESH = "fresh"  # a read that must see the latest commit, or made outside a request: primary


def engine_url(driver: str, source: str) -> str:
    """Turns a Mattermost `DataSource` into an SQLAlchemy URL.

    Several hosts (`h1:5432,h2:5433`) become SQLAlchemy's `?host=h1:5432&host=h2:5433`;
    `target_session_attrs` passes through to asyncpg.
    """
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
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if "," in hosts:
        for host in hosts.split(","):
            if ":" not in host.rsplit("]", 1)[-1]:
                host += ":5432"
            query.append(("host", host))
        netloc = userinfo + at
    return urlunsplit(("postgresql+asyncpg", netloc, parts.path, urlencode(query), ""))


def describe_source(source: str) -> str:
    """A data source without its credentials: `host:port/db` (what status pages show)."""
    parts = urlsplit(source)
    hosts = parts.netloc.rpartition("@")[2]
    return f"{hosts}{parts.path}" if parts.scheme else source


def _failover_errors(context: ExceptionContext) -> None:
    error = context.original_exception
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if state in FAILOVER_SQLSTATES or isinstance(error, (ConnectionError, OSError)):
        context.is_disconnect = True


def pool_args(settings: SqlConfig) -> dict[str, Any]:
    """The pool of every engine, SQLite's included: `MaxIdleConns` kept, up to `MaxOpenConns`
    open, and a checkout that waits at most `MaxConnectionWaitMilliseconds` (then the store
    raises `DatabaseBusy`, answered 503). SQLAlchemy's own default (5 kept, 10 more, 30 s
    wait) ran dry under 750 simulated users and turned into 5 s client timeouts."""
    return {
        "pool_size": max(1, min(settings.MaxIdleConns, settings.MaxOpenConns)),
        "max_overflow": max(0, settings.MaxOpenConns - settings.MaxIdleConns),
        "pool_timeout": settings.MaxConnectionWaitMilliseconds / 1000,
    }


def sqlite_engine(url: str, settings: SqlConfig) -> AsyncEngine:
    if ":memory:" not in url:
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    # A file database keeps every connection it opens, up to `MaxOpenConns` (WAL readers do not
    # block each other); ":memory:" keeps SQLAlchemy's own pool. `MaxIdleConns` does not apply
    # here: each connection is an aiosqlite thread, and a connection opened past the idle ones
    # was closed again when given back, so under load every request past the 20th started a
    # thread, opened the file and set its pragmas, and then stopped the thread: a fifth of the
    # event loop's time at 750 simulated users (docs/design/capacity.md). What an idle
    # connection keeps is a parked thread and its page cache (up to `cache_size`, 2 MB).
    pool = {} if ":memory:" in url else {**pool_args(settings), "max_overflow": 0}
    if pool:
        pool["pool_size"] = settings.MaxOpenConns
    # One trip to the connection's thread per statement (store/sqlite_driver.py).
    # `check_same_thread` off: the write connection runs its statements on the event loop's
    # thread while it holds the write lock (`OneTripConnection.inline`); every other use of a
    # connection is in its own aiosqlite thread, one at a time.
    engine = create_async_engine(
        url,
        module=sqlite_module(),
        connect_args={"timeout": settings.QueryTimeout, "check_same_thread": False},
        **pool,
    )

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


def make_engine(driver: str, source: str, settings: SqlConfig) -> AsyncEngine:
    url = engine_url(driver, source)
    if driver == "sqlite":
        return sqlite_engine(url, settings)
    engine = create_async_engine(
        url,
        **pool_args(settings),
        pool_recycle=settings.ConnMaxLifetimeMilliseconds / 1000
        if settings.ConnMaxLifetimeMilliseconds
        else -1,
        pool_pre_ping=True,
        # A connect never waits longer than a query may: with no primary reachable, a write
        # fails fast instead of hanging past SqlSettings.QueryTimeout.
        connect_args={
            "command_timeout": settings.QueryTimeout,
            "timeout": min(float(settings.QueryTimeout), CONNECT_TIMEOUT_SECONDS),
        },
    )
    event.listen(engine.sync_engine, "handle_error", _failover_errors)
    return engine


@dataclass
class ReplicaState:
    """What the monitor last learnt about one replica."""

    online: bool = True  # optimistic until the first probe: a broken one fails fast
    reason: str = ""
    replay_lsn: int = 0  # WAL replayed (0: unknown)
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    promoted: bool = False  # answers as a primary (after a failover)
    lagging: bool = False
    checked_at: float = 0.0
    failures: int = 0

    @property
    def in_rotation(self) -> bool:
        return self.online and not self.lagging

    def mark_down(self, reason: str) -> bool:
        """Takes the replica out until the next successful probe; True when it was up."""
        was_up = self.online
        self.online = False
        self.reason = reason
        self.failures += 1
        self.checked_at = time.monotonic()
        return was_up


@dataclass
class ReplicaEngine:
    role: Role
    index: int
    source: str
    engine: AsyncEngine
    state: ReplicaState = field(default_factory=ReplicaState)

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    @property
    def where(self) -> str:
        return describe_source(self.source)

    def status(self) -> dict[str, Any]:
        s = self.state
        return {
            "name": self.name,
            "role": str(self.role),
            "address": self.where,
            "healthy": s.in_rotation,
            "online": s.online,
            "lagging": s.lagging,
            "promoted": s.promoted,
            "lag_bytes": s.lag_bytes,
            "lag_seconds": None if s.lag_seconds is None else round(s.lag_seconds, 3),
            "reason": s.reason,
        }


class Engines:
    """One engine per data source of one configuration."""

    def __init__(self, settings: SqlConfig) -> None:
        self.settings = settings
        self.driver = settings.DriverName
        self.primary = make_engine(self.driver, settings.DataSource, settings)
        self.replicas: list[ReplicaEngine] = []
        self.search_replicas: list[ReplicaEngine] = []
        if self.driver == "sqlite":
            return  # SQLite has no replicas; the settings are validated and ignored
        for i, source in enumerate(settings.DataSourceReplicas):
            self.replicas.append(
                ReplicaEngine(Role.REPLICA, i, source, make_engine(self.driver, source, settings))
            )
        for i, source in enumerate(settings.DataSourceSearchReplicas):
            self.search_replicas.append(
                ReplicaEngine(
                    Role.SEARCH_REPLICA, i, source, make_engine(self.driver, source, settings)
                )
            )

    @property
    def all_replicas(self) -> list[ReplicaEngine]:
        return [*self.replicas, *self.search_replicas]

    async def dispose(self) -> None:
        """Closes every pooled connection; connections in use close when they are returned."""
        for engine in [self.primary, *(r.engine for r in self.all_replicas)]:
            try:
                await engine.dispose()
            except Exception:
                log.warning("disposing a pool failed", exc_info=True)


def engines_differ(old: SqlConfig, new: SqlConfig) -> bool:
    """Whether a reloaded `SqlSettings` needs new engines (a source or a pool setting)."""
    keys = (
        "DataSource",
        "DataSourceReplicas",
        "DataSourceSearchReplicas",
        "MaxIdleConns",
        "MaxOpenConns",
        "QueryTimeout",
        "ConnMaxLifetimeMilliseconds",
        "MaxConnectionWaitMilliseconds",
    )
    return any(getattr(old, k) != getattr(new, k) for k in keys)


def parse_lsn(value: str | None) -> int:
    """`16/B374D848` -> an integer position (0 for None)."""
    if not value:
        return 0
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
