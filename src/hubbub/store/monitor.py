"""Watching the replicas (and the primary) of one node's database, and the metrics about them.

`ReplicaMonitor` probes every replica each `SqlSettings.ReplicaMonitorIntervalSeconds` (default
5), down ones included, so a replica that failed comes back at the first probe that succeeds
(Mattermost re-probes only replicas already offline and never looks at lag). One probe reads:

* on the primary: its WAL insert position and its address (a changed address is a failover,
  counted in `hubbub_db_failovers_total`);
* on each replica: whether it is in recovery, the WAL position it has replayed and the time since
  the last replayed commit. Lag in bytes is the primary's position minus the replayed one; lag in
  seconds is 0 when nothing is missing (an idle primary writes no commits, so the time since the
  last replayed one says nothing then).

A replica leaves rotation when a probe fails, when a query on it loses its connection (at once,
without waiting for the next probe), when it is behind by more than `ReplicaMaxLagBytes`, or
when it is behind and has replayed nothing since the previous probe for more than
`ReplicaMaxLagSeconds` (replay stalled or paused). While the primary cannot be probed, lag is not
judged: the replicas keep serving reads. A replica that answers as a primary (promoted) has no
lag. With no replica in rotation, reads go to the primary (`store/db.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import text

from hubbub.lifecycle import Component
from hubbub.store.engines import Engines, ReplicaEngine, Role, describe_source, parse_lsn
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.store")

_PRIMARY_PROBE = text(
    "SELECT pg_current_wal_insert_lsn()::text, "
    "coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port(), 0)"
)
_REPLICA_PROBE = text(
    "SELECT pg_is_in_recovery(), "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_insert_lsn() END)::text, "
    "CASE WHEN pg_is_in_recovery() "
    "THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
)
REPLAY_POSITION = text("SELECT pg_last_wal_replay_lsn()::text")


class DatabaseMetrics:
    """Queries per class and role (also the test hook: which role served what), replica lag,
    replicas in rotation, failovers seen."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.queries = Counter(
            "hubbub_db_queries_total",
            "Database connections handed out, by query class and the role that served it",
            ["query_class", "role"],
            registry=r,
        )
        self.lag_bytes = Gauge(
            "mattermost_db_replica_lag_abs",
            "Replica lag behind the primary in bytes of WAL",
            ["node"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            "mattermost_db_replica_lag_time",
            "Replica lag behind the primary in seconds of replay",
            ["node"],
            registry=r,
        )
        self.in_rotation = Gauge(
            "hubbub_db_replicas_in_rotation",
            "Replicas currently serving reads, by role",
            ["role"],
            registry=r,
        )
        self.failovers = Counter(
            "hubbub_db_failovers_total",
            "Times this node saw the primary change (another server answers as primary)",
            registry=r,
        )
        self.recycles = Counter(
            "hubbub_db_recycles_total", "Connection pools recycled (recycle or reload)", registry=r
        )
        # Mattermost's: the time of each store call by method (here: the function that opened
        # the connection, `db.store_method`) and whether it succeeded, and the connections
        # handed out per role.
        self.store_time = Histogram(
            "mattermost_db_store_time",
            "Time to execute the store method",
            ["method", "success"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.connections = {
            Role.PRIMARY: Counter(
                "mattermost_db_master_connections_total",
                "The total number of connections to the master database",
                registry=r,
            ),
            Role.REPLICA: Counter(
                "mattermost_db_read_replica_connections_total",
                "The total number of connections to all the read replica databases",
                registry=r,
            ),
            Role.SEARCH_REPLICA: Counter(
                "mattermost_db_search_replica_connections_total",
                "The total number of connections to all the search replica databases",
                registry=r,
            ),
        }
        # SQLite's single writer: how long each store method waited for its turn and then held
        # it (BEGIN IMMEDIATE and the after-commit callbacks included), to tell which writes
        # make the others queue.
        writer_buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
        self.writer_wait = Histogram(
            "hubbub_db_writer_wait_seconds",
            "SQLite: time a write transaction waited for the single writer, by store method",
            ["method"],
            buckets=writer_buckets,
            registry=r,
        )
        self.writer_hold = Histogram(
            "hubbub_db_writer_hold_seconds",
            "SQLite: time a write transaction held the single writer, by store method",
            ["method"],
            buckets=writer_buckets,
            registry=r,
        )
        self.counts: dict[tuple[str, str], int] = {}
        self._store_children: dict[tuple[str, bool], Any] = {}
        self._writer_children: dict[str, tuple[Any, Any]] = {}

    def served(self, query_class: str, role: str) -> None:
        key = (query_class, role)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.queries.labels(query_class, role).inc()
        self.connections[Role(role)].inc()

    def writer_turn(self, method: str, waited: float, held: float) -> None:
        """Records one SQLite write transaction's wait for the writer and its hold of it."""
        children = self._writer_children.get(method)
        if children is None:
            children = (self.writer_wait.labels(method), self.writer_hold.labels(method))
            self._writer_children[method] = children
        children[0].observe(waited)
        children[1].observe(held)

    @contextlib.contextmanager
    def store_call(self, method: str) -> Iterator[None]:
        """Times one store call (`mattermost_db_store_time{method, success}`)."""
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            child = self._store_children.get((method, ok))
            if child is None:
                child = self.store_time.labels(method, "true" if ok else "false")
                self._store_children[(method, ok)] = child
            child.observe(time.perf_counter() - started)


@dataclass
class PrimaryState:
    address: str = ""
    healthy: bool = True
    reason: str = ""
    lsn: int = 0
    checked_at: float = 0.0
    failovers: int = 0
    history: list[str] = field(default_factory=list)


class ReplicaMonitor(Component):
    def __init__(
        self,
        engines: Callable[[], Engines],
        metrics: DatabaseMetrics,
        *,
        interval: float,
        max_lag_bytes: int,
        max_lag_seconds: float,
        probe_timeout: float = 3.0,
    ) -> None:
        self.engines = engines
        self.metrics = metrics
        self.interval = interval
        self.max_lag_bytes = max_lag_bytes
        self.max_lag_seconds = max_lag_seconds
        self.probe_timeout = probe_timeout
        self.primary = PrimaryState()
        self._task: asyncio.Task[None] | None = None

    def configure(self, *, interval: float, max_lag_bytes: int, max_lag_seconds: float) -> None:
        """A reloaded configuration's monitor settings (the loop picks them up)."""
        self.interval = interval
        self.max_lag_bytes = max_lag_bytes
        self.max_lag_seconds = max_lag_seconds

    async def start(self) -> None:
        if self.engines().driver == "sqlite":
            return
        await self.probe_once()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.probe_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replica probe round failed")

    async def probe_once(self) -> None:
        engines = self.engines()
        await self._probe_primary(engines)
        await asyncio.gather(*(self._probe_replica(r) for r in engines.all_replicas))
        self._export(engines)

    async def _probe_primary(self, engines: Engines) -> None:
        p = self.primary
        try:
            async with asyncio.timeout(self.probe_timeout):
                async with engines.primary.connect() as conn:
                    row = (await conn.execute(_PRIMARY_PROBE)).one()
        except Exception as exc:
            if p.healthy:
                log.error("database primary unreachable", extra={"error": _short(exc)})
            p.healthy, p.reason, p.lsn = False, _short(exc), 0
            return
        address = str(row[1])
        if p.address and address != p.address:
            p.failovers += 1
            self.metrics.failovers.inc()
            log.warning(
                "database primary changed", extra={"previous": p.address, "primary": address}
            )
        if not p.healthy:
            log.info("database primary reachable again", extra={"primary": address})
        p.address, p.healthy, p.reason, p.lsn = address, True, "", parse_lsn(row[0])
        p.checked_at = time.monotonic()

    async def _probe_replica(self, replica: ReplicaEngine) -> None:
        s = replica.state
        try:
            async with asyncio.timeout(self.probe_timeout):
                async with replica.engine.connect() as conn:
                    row = (await conn.execute(_REPLICA_PROBE)).one()
        except Exception as exc:
            if s.mark_down(_short(exc)):
                log.error(
                    "database replica out of rotation",
                    extra={"replica": replica.name, "address": replica.where, "cause": s.reason},
                )
            await _drop_pool(replica)
            return
        in_recovery, replay, seconds = bool(row[0]), parse_lsn(row[1]), row[2]
        previous = s.replay_lsn
        was_in_rotation = s.in_rotation
        s.online, s.reason, s.checked_at = True, "", time.monotonic()
        s.promoted = not in_recovery
        s.replay_lsn = replay
        primary_lsn = self.primary.lsn if self.primary.healthy else 0
        if s.promoted:
            s.lag_bytes, s.lag_seconds, s.lagging = 0, 0.0, False
        elif not primary_lsn:
            # No primary to compare with: lag is unknown and does not take a replica out.
            s.lag_bytes, s.lag_seconds, s.lagging = None, None, False
        else:
            s.lag_bytes = max(0, primary_lsn - replay)
            s.lag_seconds = 0.0 if s.lag_bytes == 0 else float(seconds or 0.0)
            stalled = s.lag_bytes > 0 and replay == previous
            s.lagging = s.lag_bytes > self.max_lag_bytes or (
                stalled and s.lag_seconds > self.max_lag_seconds
            )
            if s.lagging:
                s.reason = f"lagging: {s.lag_bytes} bytes, {s.lag_seconds:.1f} s behind"
        if s.in_rotation and not was_in_rotation:
            log.info(
                "database replica back in rotation",
                extra={"replica": replica.name, "address": replica.where},
            )
        elif was_in_rotation and not s.in_rotation:
            log.warning(
                "database replica out of rotation",
                extra={"replica": replica.name, "address": replica.where, "cause": s.reason},
            )

    def _export(self, engines: Engines) -> None:
        counts: dict[str, int] = {"replica": 0, "search_replica": 0}
        for r in engines.all_replicas:
            if r.state.in_rotation:
                counts[str(r.role)] += 1
            node = r.where
            if r.state.lag_bytes is not None:
                self.metrics.lag_bytes.labels(node).set(r.state.lag_bytes)
            if r.state.lag_seconds is not None:
                self.metrics.lag_seconds.labels(node).set(r.state.lag_seconds)
        for role, n in counts.items():
            self.metrics.in_rotation.labels(role).set(n)

    def report_failure(self, replica: ReplicaEngine, exc: BaseException) -> None:
        """A query on `replica` lost its connection: out of rotation until a probe succeeds."""
        if replica.state.mark_down(_short(exc)):
            log.error(
                "database replica out of rotation",
                extra={"replica": replica.name, "address": replica.where, "cause": _short(exc)},
            )

    def status(self) -> dict[str, Any]:
        engines = self.engines()
        p = self.primary
        return {
            "driver": engines.driver,
            "primary": {
                "address": p.address or describe_source(engines.settings.DataSource),
                "healthy": p.healthy,
                "reason": p.reason,
                "failovers": p.failovers,
            },
            "replicas": [r.status() for r in engines.replicas],
            "search_replicas": [r.status() for r in engines.search_replicas],
        }


async def _drop_pool(replica: ReplicaEngine) -> None:
    try:
        await replica.engine.dispose()
    except Exception:
        log.debug("disposing a failed replica's pool failed", exc_info=True)


def _short(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text_[:200]
