"""The operator console's view of the cluster: every node green, yellow or red with the reason in
words, the leader, the data tier, and each node's websocket figures (`GET /api/v4/hubbub/console`,
drawn by `/admin`).

Nodes are read from the discovery table (each node's props carry its readiness, setting digests
and websocket figures: `node_report.py`); the answering node uses its own props fresh from
memory. `assess()` is pure, so the rules are unit-tested:

* red: down (no heartbeat within the live window), not ready (a readiness check fails: which one),
  a version more than one minor away from another live node's, a schema different from that of
  the nodes of the same version, or a config mismatch, named by setting (each setting's digest
  compared with the majority's, over the nodes that have the setting: `cluster/agreement.py`);
* yellow: a version mix within the rolling-upgrade window (every live node says which nodes run
  which version), degraded (serving, but something is impaired: Redis unreachable, so events
  wait in the outbox), draining (SIGTERM: finishing requests, websockets sent elsewhere), or a
  heartbeat that is late but still inside the live window;
* green otherwise.

The data tier is probed by the answering node (each probe bounded): the database (driver, server
version, whether it is a primary, streaming replicas and their lag when PostgreSQL reports any),
Redis (role and replicas from `INFO replication`, the event bus as this node sees it) and the file
store (a write/read/delete round trip here, and whether every node reports it shared).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import text

from hubbub.cluster.agreement import (
    differing_settings,
    majority,
    outside_window,
    same_version,
    version_mix,
)
from hubbub.cluster.backends import RealtimeBackends
from hubbub.cluster.discovery import Discovery, NodeInfo
from hubbub.config import Settings
from hubbub.files import FileBackend
from hubbub.ids import now_ms
from hubbub.store.db import Database

PROBE_SECONDS = 2.0
GREEN, YELLOW, RED = "green", "yellow", "red"
_RANK = {GREEN: 0, YELLOW: 1, RED: 2}


def assess(
    nodes: Sequence[NodeInfo],
    *,
    now: int,
    heartbeat_seconds: float,
    live_seconds: float,
    me: str | None,
    leader_id: str | None,
) -> list[dict[str, Any]]:
    """One entry per node: its state (green, yellow, red), the reasons in words, and its figures."""
    live = [n for n in nodes if n.is_live(now, live_seconds)]
    order = [n.id for n in live]
    live_ids = set(order)
    mix = version_mix(live)
    out = []
    for node in nodes:
        props = node.props
        age = max(0.0, (now - node.last_ping_at) / 1000)
        reasons: list[tuple[str, str]] = []
        if node.id not in live_ids:
            reasons.append((RED, f"down: no heartbeat for {age:.0f} s"))
        else:
            problems = [str(p) for p in props.get("problems") or []]
            reasons += [(RED, f"not ready: {p}") for p in problems]
            others = majority({n.id: n.version for n in live}, order, me)
            if node.version != others and outside_window(node, live):
                reasons.append((RED, f"version mismatch: {node.version} (the others run {others})"))
            elif mix is not None:
                reasons.append((YELLOW, mix))
            kin = same_version(node, live)
            schema = majority({n.id: n.schema_version for n in kin}, [n.id for n in kin], me)
            if node.schema_version != schema:
                reasons.append(
                    (
                        RED,
                        f"schema mismatch: {node.schema_version or 'unknown'} "
                        f"(the others have {schema})",
                    )
                )
            config = majority({n.id: n.config_hash for n in live}, order, me)
            if node.config_hash != config:
                names = differing_settings(node, live, me)
                if names:
                    reasons.append((RED, "config mismatch: " + ", ".join(names)))
                elif mix is None or names is None:
                    reasons.append((RED, f"config mismatch: hash {node.config_hash}"))
                # else: only settings one of the two releases lacks differ (the mix says so)
            degraded = [str(d) for d in props.get("degraded") or []]
            reasons += [(YELLOW, f"degraded: {d}") for d in degraded]
            if props.get("draining"):
                reasons.append((YELLOW, "draining: finishing requests, websockets moved away"))
            if age > 2 * heartbeat_seconds:
                reasons.append((YELLOW, f"heartbeat late: {age:.0f} s ago"))
        state = max((s for s, _ in reasons), key=_RANK.__getitem__, default=GREEN)
        websockets = props.get("websockets")
        out.append(
            {
                "id": node.id,
                "node_name": node.node_name,
                "address": f"{props.get('ipaddress', '')}:{node.port}",
                "version": node.version,
                "schema_version": node.schema_version,
                "config_hash": node.config_hash,
                "started_at": node.create_at,
                "last_heartbeat": node.last_ping_at,
                "heartbeat_age_seconds": round(age, 1),
                "leader": node.id == leader_id,
                "this_node": node.id == me,
                "state": state,
                "reasons": [why for _, why in reasons] or ["ok"],
                "websockets": websockets
                if isinstance(websockets, dict)
                else {"connections": int(props.get("websocket_connections", 0))},
            }
        )
    return out


async def _bounded(probe: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(probe, PROBE_SECONDS)
    except TimeoutError:
        return {"status": "unreachable", "error": f"no answer within {PROBE_SECONDS:g} s"}
    except Exception as exc:
        return {"status": "unreachable", "error": str(exc) or type(exc).__name__}
    return {"status": "ok", "latency_ms": round((time.monotonic() - started) * 1000, 1), **result}


class OperatorConsole:
    def __init__(
        self,
        settings: Settings,
        *,
        discovery: Discovery,
        leader_id: Callable[[], Awaitable[str | None]],
        db: Database,
        backends: RealtimeBackends,
        files: FileBackend,
        node_name: str,
    ) -> None:
        self.settings = settings
        self.discovery = discovery
        self.leader_id = leader_id
        self.db = db
        self.backends = backends
        self.files = files
        self.node_name = node_name

    async def _nodes(self) -> list[NodeInfo]:
        me = self.discovery.local_node()
        if not self.discovery.enabled:
            return [me]
        nodes = [me if n.id == me.id else n for n in await self.discovery.all_nodes()]
        return nodes if any(n.id == me.id for n in nodes) else [*nodes, me]

    def _assess(self, nodes: list[NodeInfo], leader: str | None) -> list[dict[str, Any]]:
        timing = self.discovery.timing
        return assess(
            nodes,
            now=now_ms(),
            heartbeat_seconds=timing.heartbeat,
            live_seconds=timing.live,
            me=self.discovery.node_id,
            leader_id=leader,
        )

    async def picture(self) -> dict[str, Any]:
        """What the console's cluster table shows, without the data tier's probes: each node's
        state and reasons, and the leader (`console_watch.py` compares it between heartbeats)."""
        assessed = self._assess(await self._nodes(), await self.leader_id())
        return {
            "leader": next((n["node_name"] for n in assessed if n["leader"]), None),
            "nodes": sorted((n["node_name"], n["state"], tuple(n["reasons"])) for n in assessed),
        }

    async def view(self) -> dict[str, Any]:
        nodes = await self._nodes()
        leader, database, redis, files = await asyncio.gather(
            self.leader_id(),
            _bounded(self._database()),
            self._redis(),
            _bounded(self._file_store()),
        )
        assessed = self._assess(nodes, leader)
        shared_problems = [
            f"{n['node_name']}: {r.removeprefix('not ready: ')}"
            for n in assessed
            for r in n["reasons"]
            if "is not shared between nodes" in r
        ]
        files["shared"] = not shared_problems
        files["problems"] = shared_problems
        return {
            "generated_at": now_ms(),
            "answered_by": self.node_name,
            "cluster_enabled": self.discovery.enabled,
            "cluster_name": self.settings.ClusterSettings.ClusterName,
            "heartbeat_seconds": self.discovery.timing.heartbeat,
            "live_seconds": self.discovery.timing.live,
            "leader": next((n["node_name"] for n in assessed if n["leader"]), None),
            "nodes": assessed,
            "data": {"database": database, "redis": redis, "files": files},
        }

    async def _database(self) -> dict[str, Any]:
        sql = self.db.settings  # the running SqlSettings (reloadable)
        info: dict[str, Any] = {
            "driver": sql.DriverName,
            "replicas_configured": len(sql.DataSourceReplicas),
            "search_replicas_configured": len(sql.DataSourceSearchReplicas),
            # This node's roles and their health, as its replica monitor sees them.
            "routing": self.db.status(),
        }
        # The primary itself: a routed read could land on a replica and report its role.
        async with self.db.read_primary() as conn:
            if self.db.is_sqlite:
                version = (await conn.execute(text("SELECT sqlite_version()"))).scalar()
                info.update(server_version=f"SQLite {version}", role="single file (no replicas)")
                return info
            row = (await conn.execute(text("SELECT version(), pg_is_in_recovery()"))).one()
            info.update(server_version=str(row[0]).split(",")[0], role=_pg_role(bool(row[1])))
            try:
                replicas = (
                    await conn.execute(
                        text(
                            "SELECT application_name, client_addr::text, state, "
                            "EXTRACT(EPOCH FROM replay_lag) FROM pg_stat_replication"
                        )
                    )
                ).all()
            except Exception:
                replicas = []
            info["streaming_replicas"] = [
                {
                    "name": r[0],
                    "address": r[1],
                    "state": r[2],
                    "lag_seconds": None if r[3] is None else float(r[3]),
                }
                for r in replicas
            ]
        return info

    async def _redis(self) -> dict[str, Any]:
        client = self.backends.redis
        if client is None:
            return {"used": False, "note": "one node: events and connections kept in memory"}

        async def probe() -> dict[str, Any]:
            replication = await client.info("replication")
            server = await client.info("server")
            return {
                "role": replication.get("role", "?"),
                "connected_replicas": int(replication.get("connected_slaves", 0)),
                "master_link_status": replication.get("master_link_status"),
                "server_version": server.get("redis_version", "?"),
                "sentinel": await self._sentinel(client),
            }

        info = {"used": True, **await _bounded(probe())}
        bus = self.backends.eventlog.bus_status()
        if bus is not None:
            info["event_bus"] = {
                "healthy": bus.healthy,
                "lag_ms": round(bus.lag_seconds * 1000, 1),
                "reconnects": bus.reconnects,
                "resets": bus.resets,
                "last_error": bus.last_error,
            }
        return info

    async def _sentinel(self, client: Any) -> dict[str, Any] | str:
        """Where the sentinels say the master is, when `CacheSettings.RedisSentinels` is set."""
        from hubbub.cluster.redis_eventlog import parse_sentinels  # Redis only: lazily

        cache = self.settings.CacheSettings
        manager = getattr(client.connection_pool, "sentinel_manager", None)
        if not cache.RedisSentinels.strip() or manager is None:
            return "not configured"
        host, port = await manager.discover_master(cache.RedisMasterName)
        return {
            "sentinels": [f"{h}:{p}" for h, p in parse_sentinels(cache.RedisSentinels)],
            "master_name": cache.RedisMasterName,
            "master": f"{host}:{port}",
        }

    async def _file_store(self) -> dict[str, Any]:
        f = self.settings.FileSettings
        await self.files.check()
        where = f.Directory if f.DriverName == "local" else f"s3://{f.AmazonS3Bucket}"
        return {"driver": f.DriverName, "location": where}


def _pg_role(in_recovery: bool) -> str:
    return "replica (read only)" if in_recovery else "primary"
