"""Choosing the realtime backends: memory for a single node, Redis for a cluster.

`CacheSettings.CacheType = "redis"` (with `CacheSettings.RedisAddress`) selects the Redis event
log, connection registry and bus, and turns on the outbox so delivery survives a node dying
between commit and publish. Everything else in the node is the same in both shapes.

`build_backends` is called by the composition root only. `RealtimeBackends` is the component
that starts and stops the Redis-backed ones as a group: a node whose Redis is unreachable at start
keeps retrying in the background instead of refusing to start.

While Redis is unreachable the node is *degraded*, not down (DESIGN §5): REST keeps working,
committed events wait in the outbox, and the health check stays 200 with the cause listed under
`degraded`; `CacheSettings.RedisOutageNotReady = true` makes it report not-ready instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from hubbub.cluster.bus import ClusterBus, MemoryBus, RedisBus
from hubbub.cluster.connections import ConnectionRegistry, MemoryConnectionRegistry
from hubbub.cluster.eventlog import EventLog, MemoryEventLog
from hubbub.cluster.metrics import ClusterMetrics
from hubbub.cluster.outbox import Outbox, OutboxSweeper, RedisChannelOrder
from hubbub.config import Settings
from hubbub.config.settings import CacheConfig
from hubbub.lifecycle import Component
from hubbub.store.db import Database

log = logging.getLogger("hubbub.cluster")


def redis_url(address: str, password: str, db: int) -> str:
    """`host:port` (or a redis:// URL) plus password and database as a redis:// URL."""
    if address.startswith(("redis://", "rediss://", "unix://")):
        return address
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{address}/{max(db, 0)}"


@dataclass
class RealtimeBackends(Component):
    eventlog: EventLog
    registry: ConnectionRegistry
    bus: ClusterBus
    outbox: Outbox | None = None
    sweeper: OutboxSweeper | None = None
    redis: Any = None
    outage_not_ready: bool = False  # CacheSettings.RedisOutageNotReady
    _starter: asyncio.Task[None] | None = field(default=None, repr=False)
    started: bool = False
    last_error: str = ""

    @property
    def uses_redis(self) -> bool:
        return self.redis is not None

    async def start(self) -> None:
        """Starts the backends; if Redis is unreachable, keeps retrying in the background
        (the node reports not-ready meanwhile) instead of refusing to start."""
        if not self.uses_redis:
            self.started = True
            return
        try:
            await self._start_once()
        except Exception as exc:
            self.last_error = f"cannot reach Redis: {exc}"
            log.error("realtime backends not ready, retrying", extra={"error": self.last_error})
            self._starter = asyncio.get_running_loop().create_task(self._retry())

    async def _start_once(self) -> None:
        await self.eventlog.start()
        await self.registry.start()
        await self.bus.start()
        if self.sweeper is not None:
            await self.sweeper.start()
        self.started = True
        self.last_error = ""
        log.info("realtime backends ready (redis)")

    async def _retry(self) -> None:
        delay = 0.5
        while not self.started:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                await self.eventlog.stop()
                await self._start_once()
            except Exception as exc:
                self.last_error = f"cannot reach Redis: {exc}"

    def outage(self) -> list[str]:
        """Why this node cannot deliver events right now (empty when it can)."""
        if not self.uses_redis:
            return []
        if not self.started:
            return [self.last_error or "realtime backends not started"]
        return self.eventlog.problems()

    def problems(self) -> list[str]:
        """Why this node must not get traffic: a Redis outage only if the operator said so."""
        return self.outage() if self.outage_not_ready else []

    def degraded(self) -> list[str]:
        """What is impaired while the node keeps serving (REST works, events wait)."""
        return [] if self.outage_not_ready else self.outage()

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if not self.uses_redis:
            return
        if self.sweeper is not None:
            await self.sweeper.stop()
        await self.bus.stop()
        backends: tuple[Component, ...] = (self.registry, self.eventlog)
        for backend in backends:
            with contextlib.suppress(Exception):
                await backend.stop()
        with contextlib.suppress(Exception):
            await self.redis.aclose()


def key_prefix(settings: Settings) -> str:
    """What starts every Redis key and channel of this cluster (`hubbub:<ClusterName>:`), so
    clusters can share one Redis."""
    return f"hubbub:{settings.ClusterSettings.ClusterName or 'hubbub'}:"


def bus_channel(settings: Settings) -> str:
    """The Redis pub/sub channel of the cluster bus."""
    return key_prefix(settings) + "bus"


def build_backends(
    settings: Settings,
    db: Database,
    node_id: str,
    outbox_class: type[Outbox] = Outbox,
    metrics: ClusterMetrics | None = None,
) -> RealtimeBackends:
    """The backends `settings` ask for. `outbox_class` lets a test run the node with an outbox
    that fails on purpose (tests/support/faults.py)."""
    cache = settings.CacheSettings
    if cache.CacheType != "redis":
        return RealtimeBackends(
            MemoryEventLog(), MemoryConnectionRegistry(), MemoryBus(node_id, metrics)
        )
    from hubbub.cluster.redis_connections import RedisConnectionRegistry
    from hubbub.cluster.redis_eventlog import RedisEventLog

    redis = make_redis(cache)
    prefix = key_prefix(settings)
    eventlog = RedisEventLog(redis, node_id, prefix=prefix)
    outbox = outbox_class(db, eventlog, order=RedisChannelOrder(redis, prefix), metrics=metrics)
    return RealtimeBackends(
        eventlog=eventlog,
        registry=RedisConnectionRegistry(redis, node_id, prefix=prefix),
        bus=RedisBus(redis, bus_channel(settings), node_id, metrics),
        outbox=outbox,
        sweeper=OutboxSweeper(outbox),
        redis=redis,
        outage_not_ready=cache.RedisOutageNotReady,
    )


def make_redis(cache: CacheConfig) -> Any:
    """The Redis client `CacheSettings` name: the sentinels' master, or RedisAddress."""
    from hubbub.cluster.redis_eventlog import parse_sentinels, redis_client, sentinel_client

    if cache.RedisSentinels.strip():
        return sentinel_client(
            parse_sentinels(cache.RedisSentinels),
            cache.RedisMasterName,
            password=cache.RedisPassword,
            db=cache.RedisDB,
        )
    if not cache.RedisAddress:
        raise ValueError(
            "CacheSettings.RedisAddress (or RedisSentinels) is required when CacheType is redis"
        )
    return redis_client(redis_url(cache.RedisAddress, cache.RedisPassword, cache.RedisDB))
