"""Replica routing pieces without a server: data source URLs, WAL positions, the rotation
order per query class, the shared write positions, and which errors count as a failover."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

import pytest

from hubbub.config.settings import SqlConfig
from hubbub.store.consistency import MemoryPositions, reading_as
from hubbub.store.db import CheckoutTimeout, Database, _checkout
from hubbub.store.engines import (
    QueryClass,
    _failover_errors,
    describe_source,
    engine_url,
    format_lsn,
    parse_lsn,
)


def test_multi_host_data_source_becomes_sqlalchemy_hosts() -> None:
    url = engine_url(
        "postgres",
        "postgres://mm:pw@db1:5432,db2/mattermost?sslmode=disable&target_session_attrs=read-write",
    )
    assert url == (
        "postgresql+asyncpg://mm:pw@/mattermost?target_session_attrs=read-write"
        "&host=db1%3A5432&host=db2%3A5432"
    )
    assert (
        engine_url("postgres", "postgres://mm@db1:5433/x") == "postgresql+asyncpg://mm@db1:5433/x"
    )
    assert (
        describe_source("postgres://mm:secret@db1:5432,db2:5432/mm?x=1") == "db1:5432,db2:5432/mm"
    )


def test_lsn_round_trip() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert format_lsn(parse_lsn("0/3000148")) == "0/3000148"
    assert parse_lsn(None) == 0


def _db() -> Database:
    return Database(
        SqlConfig(
            DriverName="postgres",
            DataSource="postgres://u@primary:5432/db",
            DataSourceReplicas=["postgres://u@r0:5432/db", "postgres://u@r1:5432/db"],
            DataSourceSearchReplicas=["postgres://u@s0:5432/db"],
        )
    )


async def test_rotation_order_per_query_class() -> None:
    db = _db()
    try:
        names = [r.name for r in db._rotation(QueryClass.SEARCH)]
        assert names[0] == "search_replica-0"
        assert set(names[1:]) == {"replica-0", "replica-1"}
        # Round robin over the read replicas.
        firsts = {db._rotation(QueryClass.READ)[0].name for _ in range(4)}
        assert firsts == {"replica-0", "replica-1"}
        # A replica out of rotation is skipped; with none left for search, read replicas.
        db.engines.search_replicas[0].state.mark_down("connection refused")
        db.engines.replicas[0].state.lagging = True
        assert [r.name for r in db._rotation(QueryClass.SEARCH)] == ["replica-1"]
        assert [r.name for r in db._rotation(QueryClass.READ)] == ["replica-1"]
        db.engines.replicas[1].state.mark_down("gone")
        assert db._rotation(QueryClass.READ) == []
    finally:
        await db.close()


async def test_sqlite_ignores_replicas() -> None:
    db = Database(SqlConfig(DataSource=":memory:", DataSourceReplicas=["postgres://u@r/db"]))
    try:
        assert not db.has_replicas
    finally:
        await db.close()


async def test_positions_keep_the_largest_and_expire() -> None:
    now = [0.0]
    store = MemoryPositions(10, clock=lambda: now[0])
    await store.record("u", 500)
    await store.record("u", 300)  # a slower concurrent write must not lower it
    assert await store.get("u") == 500
    assert await store.get("other") == 0
    now[0] = 11
    assert await store.get("u") == 0


async def test_a_request_remembers_its_own_writes() -> None:
    store = MemoryPositions(10)
    await store.record("u", 700)
    with reading_as("u", store) as ctx:
        assert await ctx.min_lsn() == 700
        ctx.wrote(900)
        assert await ctx.min_lsn() == 900


class _Broken:
    async def get(self, user_id: str) -> int:
        raise ConnectionError("redis down")


async def test_unknown_position_means_primary() -> None:
    with reading_as("u", _Broken()) as ctx:  # type: ignore[arg-type]
        assert await ctx.min_lsn() == -1


@pytest.mark.parametrize(
    ("error", "disconnect"),
    [
        (SimpleNamespace(sqlstate="25006"), True),  # read-only: a demoted primary
        (SimpleNamespace(sqlstate="57P01"), True),  # terminated by the administrator
        (SimpleNamespace(sqlstate="57P03"), True),  # cannot connect now
        (ConnectionResetError(), True),
        (SimpleNamespace(sqlstate="23505"), False),  # a unique violation is the caller's
    ],
)
def test_failover_errors_invalidate_the_pool(error: Any, disconnect: bool) -> None:
    context = SimpleNamespace(original_exception=error, is_disconnect=False)
    _failover_errors(context)  # type: ignore[arg-type]
    assert context.is_disconnect is disconnect


def test_cluster_status_table_shows_database_roles() -> None:
    from hubbub.cluster.discovery import database_lines

    node = {
        "database": {
            "driver": "postgres",
            "primary": {"address": "10.0.0.1:5432", "healthy": True},
            "replicas": [
                {
                    "name": "replica-0",
                    "address": "db2:5432/mm",
                    "healthy": True,
                    "lag_bytes": 0,
                    "lag_seconds": 0.0,
                },
            ],
            "search_replicas": [
                {
                    "name": "search_replica-0",
                    "address": "db3:5432/mm",
                    "healthy": False,
                    "reason": "connection refused",
                },
            ],
        },
        "restart_required": ["TeamSettings.SiteName"],
    }
    assert database_lines(node) == [
        "database primary 10.0.0.1:5432: ok",
        "database replica-0 db2:5432/mm: ok, lag 0 B / 0.0 s",
        "database search_replica-0 db3:5432/mm: OUT (connection refused)",
        "restart required: TeamSettings.SiteName",
    ]


class _HungEngine:
    """An engine whose checkout hangs like a pre-ping on a frozen server: it waits, and once
    cancelled it still spends `cleanup` seconds (SQLAlchemy closes the dead connection with a
    2 s timeout) before giving up. With `late`, it ignores the cancel and succeeds after `late`
    seconds."""

    def __init__(self, cleanup: float, late: float | None = None) -> None:
        self.cleanup, self.late = cleanup, late
        self.closed = asyncio.Event()

    def connect(self) -> Any:
        engine = self

        class Pending:
            async def start(self) -> Any:
                if engine.late is not None:  # a connect that completes despite the cancel
                    done_at = time.monotonic() + engine.late
                    while time.monotonic() < done_at:
                        with contextlib.suppress(asyncio.CancelledError):
                            await asyncio.sleep(done_at - time.monotonic())
                    return SimpleNamespace(close=engine._close)
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    await asyncio.sleep(engine.cleanup)
                    raise
                raise AssertionError("not reached")

        return Pending()

    async def _close(self) -> None:
        self.closed.set()


async def test_a_checkout_gives_up_at_its_budget_without_waiting_for_the_cleanup() -> None:
    began = time.monotonic()
    with pytest.raises(CheckoutTimeout, match="QueryTimeout"):
        await _checkout(_HungEngine(cleanup=2.0), 0.2)  # type: ignore[arg-type]
    assert time.monotonic() - began < 1.0
    # A connection the abandoned checkout still gets is closed, not leaked.
    late = _HungEngine(cleanup=0, late=0.3)
    with pytest.raises(CheckoutTimeout):
        await _checkout(late, 0.1)  # type: ignore[arg-type]
    await asyncio.wait_for(late.closed.wait(), 2)
