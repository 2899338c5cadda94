"""Cluster membership: the `cluster_discovery` table, heartbeats, and the cluster status view.

Each node of a cluster (`ClusterSettings.Enable`) registers one row at start (replacing a row left
by an earlier process with the same identity, as Mattermost's discovery service does), refreshes
`last_ping_at` and its props every heartbeat, and deletes the row when it stops. A row whose last
heartbeat is older than the live window is *stale*: still listed, never counted. The leader deletes
rows older than the expiry window (`delete_expired`, fenced by its token).

After each heartbeat the node hands the list of live nodes to its listeners (the shared-storage
check in `topology.py` is one). `cluster_view` turns rows into Mattermost's `ClusterInfo` shape
plus our fields and marks each node ok, mismatch (version, schema or config hash differs from the
majority) or stale. A node without `ClusterSettings.Enable` writes nothing and reports only itself.

Timing comes from hubbub's own settings in `ClusterSettings` (docs/cluster.md):
`HeartbeatSeconds` (5), `LiveSeconds` (4 heartbeats), `LeaseSeconds` (3 heartbeats),
`ExpireSeconds` (3600).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping

from hubbub import __version__
from hubbub.cluster.agreement import majority, outside_window, same_version, version_mix
from hubbub.config import Settings, config_hash, split_address
from hubbub.ids import new_id, now_ms
from hubbub.lifecycle import Component
from hubbub.store.db import Database
from hubbub.store.tables import cluster_discovery
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")

CDS_TYPE_APP = "hubbub_app"


@dataclass(frozen=True)
class ClusterTiming:
    """How often nodes heartbeat and renew the lease, and when rows count as stale or expired."""

    heartbeat: float = 5.0
    live: float = 20.0
    lease: float = 15.0
    expire: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterTiming:
        """`ClusterSettings.*Seconds` (validated at load); live and lease scale with the
        heartbeat unless set."""
        c = settings.ClusterSettings
        heartbeat = c.HeartbeatSeconds
        return cls(
            heartbeat=heartbeat,
            live=c.LiveSeconds or 4 * heartbeat,
            lease=c.LeaseSeconds or 3 * heartbeat,
            expire=c.ExpireSeconds,
        )


# The config hash nodes compare; `config_hash` already leaves out the per-node listen addresses.
cluster_config_hash = config_hash


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is: what it writes into its discovery row."""

    cluster_name: str
    hostname: str
    port: int
    node_name: str
    ipaddress: str
    config_hash: str
    version: str = __version__

    @classmethod
    def from_settings(cls, settings: Settings, node_name: str) -> NodeIdentity:
        """hostname + listen port unless `ClusterSettings.OverrideHostname` names the node."""
        host, port = split_address(settings.ServiceSettings.ListenAddress, default_host="")
        hostname = settings.ClusterSettings.OverrideHostname or socket.gethostname()
        return cls(
            cluster_name=settings.ClusterSettings.ClusterName,
            hostname=hostname,
            port=port,
            node_name=node_name,
            ipaddress=advertised_ip(host),
            config_hash=cluster_config_hash(settings),
        )


def advertised_ip(listen_host: str) -> str:
    """The address peers and operators can use: the listen host, or the outbound interface's."""
    if listen_host and listen_host not in {"0.0.0.0", "::", "*"}:
        return listen_host
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
        return str(s.getsockname()[0])
    return "127.0.0.1"


@dataclass(frozen=True)
class NodeInfo:
    """One `cluster_discovery` row."""

    id: str
    cluster_name: str
    hostname: str
    port: int
    create_at: int
    last_ping_at: int
    version: str
    schema_version: str
    config_hash: str
    props: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: RowMapping) -> NodeInfo:
        props = row["props"] if isinstance(row["props"], dict) else {}
        return cls(
            id=row["id"],
            cluster_name=row["cluster_name"],
            hostname=row["hostname"],
            port=int(row["port"]),
            create_at=int(row["create_at"]),
            last_ping_at=int(row["last_ping_at"]),
            version=row["version"],
            schema_version=row["schema_version"],
            config_hash=row["config_hash"],
            props=props,
        )

    @property
    def node_name(self) -> str:
        return str(self.props.get("node_name") or f"{self.hostname}:{self.port}")

    def is_live(self, now: int, live_seconds: float) -> bool:
        return now - self.last_ping_at <= live_seconds * 1000


HeartbeatListener = Callable[[list[NodeInfo]], Awaitable[None]]


class Discovery(Component):
    """This node's row in `cluster_discovery` and its heartbeat; reads of the others' rows."""

    def __init__(
        self,
        db: Database,
        identity: NodeIdentity,
        *,
        enabled: bool,
        timing: ClusterTiming,
        node_id: str | None = None,
        schema_version: Callable[[], str] = lambda: "",
        websocket_connections: Callable[[], int] = lambda: 0,
        report: Callable[[], Mapping[str, Any]] = dict,
        listeners: Sequence[HeartbeatListener] = (),
        clock: Callable[[], int] = now_ms,
        config_hash: Callable[[], str] | None = None,
    ) -> None:
        self.db = db
        self.identity = identity
        # The hash of the running configuration, written at every heartbeat: it changes when
        # the configuration is reloaded (config/live.py).
        self.config_hash = config_hash or (lambda: identity.config_hash)
        self.enabled = enabled
        self.timing = timing
        self.node_id = node_id or new_id()
        self._schema_version = schema_version
        self.websocket_connections = websocket_connections
        # More props for the operator console (observability/node_report.py), every heartbeat.
        self.report = report
        self.clock = clock
        self.listeners = tuple(listeners)
        self.started_at = clock()
        self._task: asyncio.Task[None] | None = None

    def _props(self) -> dict[str, Any]:
        return {
            **self.report(),
            "node_name": self.identity.node_name,
            "ipaddress": self.identity.ipaddress,
            "websocket_connections": self.websocket_connections(),
            "started_at": self.started_at,
            "pid": os.getpid(),
        }

    def local_node(self) -> NodeInfo:
        """This node as a row, computed in memory (the whole view when clustering is off)."""
        return NodeInfo(
            id=self.node_id,
            cluster_name=self.identity.cluster_name,
            hostname=self.identity.hostname,
            port=self.identity.port,
            create_at=self.started_at,
            last_ping_at=self.clock(),
            version=self.identity.version,
            schema_version=self._schema_version(),
            config_hash=self.config_hash(),
            props=self._props(),
        )

    async def start(self) -> None:
        if not self.enabled:
            return
        await self._register()
        log.info(
            "joined cluster",
            extra={
                "cluster_name": self.identity.cluster_name,
                "node_id": self.node_id,
                "node_name": self.identity.node_name,
                "heartbeat_seconds": self.timing.heartbeat,
            },
        )
        await self._notify()
        self._task = asyncio.create_task(self._run(), name="cluster-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        if not self.enabled:
            return
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    delete(cluster_discovery).where(cluster_discovery.c.id == self.node_id)
                )
        except Exception:
            log.warning("could not remove this node's discovery row", exc_info=True)

    async def _register(self) -> None:
        """Replaces any row with this identity (a restart of this node) by a fresh one."""
        now = self.clock()
        ident = self.identity
        same = (
            (cluster_discovery.c.cluster_name == ident.cluster_name)
            & (cluster_discovery.c.hostname == ident.hostname)
            & (cluster_discovery.c.port == ident.port)
        )
        async with self.db.write() as conn:
            old = (
                (
                    await conn.execute(
                        select(cluster_discovery.c.id, cluster_discovery.c.last_ping_at).where(same)
                    )
                )
                .mappings()
                .first()
            )
            if old is not None and old["id"] != self.node_id:
                if now - old["last_ping_at"] <= self.timing.live * 1000:
                    log.warning(
                        "replacing a live discovery row with this node's identity: a restart, or "
                        "two nodes share one identity (check ClusterSettings.OverrideHostname)",
                        extra={"identity": f"{ident.hostname}:{ident.port}", "old_id": old["id"]},
                    )
                await conn.execute(delete(cluster_discovery).where(same))
            await conn.execute(
                insert(cluster_discovery).values(
                    id=self.node_id,
                    type=CDS_TYPE_APP,
                    cluster_name=ident.cluster_name,
                    hostname=ident.hostname,
                    port=ident.port,
                    create_at=self.started_at,
                    last_ping_at=now,
                    version=ident.version,
                    schema_version=self._schema_version(),
                    config_hash=self.config_hash(),
                    props=self._props(),
                )
            )

    async def heartbeat(self) -> None:
        """Refreshes this node's row (re-registering if it vanished), then tells the listeners."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(cluster_discovery)
                .where(cluster_discovery.c.id == self.node_id)
                .values(
                    last_ping_at=self.clock(),
                    config_hash=self.config_hash(),
                    props=self._props(),
                )
            )
        if result.rowcount == 0:
            log.warning(
                "this node's discovery row was gone (deleted after a long pause, or by a node "
                "with the same identity); registering again",
                extra={"node_id": self.node_id},
            )
            await self._register()
        await self._notify()

    async def _notify(self) -> None:
        live = await self.live_nodes()
        for listener in self.listeners:
            try:
                await listener(live)
            except Exception:
                log.exception("cluster heartbeat listener failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.timing.heartbeat)
            try:
                await self.heartbeat()
            except Exception:
                log.warning("cluster heartbeat failed", exc_info=True)

    async def all_nodes(self) -> list[NodeInfo]:
        """Every row of this cluster, stale ones included, oldest node first."""
        return await read_nodes(self.db, self.identity.cluster_name)

    async def live_nodes(self) -> list[NodeInfo]:
        now = self.clock()
        return [n for n in await self.all_nodes() if n.is_live(now, self.timing.live)]

    async def view(self, leader_id: str | None) -> list[dict[str, Any]]:
        """The cluster status as this node answers it (`GET /api/v4/cluster/status`)."""
        me = self.local_node()
        if not self.enabled:
            nodes = [me]
        else:
            nodes = [me if n.id == me.id else n for n in await self.all_nodes()]
            if all(n.id != me.id for n in nodes):
                nodes.append(me)
        return cluster_view(
            nodes, now=self.clock(), live_seconds=self.timing.live, me=me.id, leader_id=leader_id
        )

    async def delete_expired(self, fence: Callable[[Any], Awaitable[None]]) -> int:
        """Deletes rows older than the expiry window; `fence` checks the leader's token first."""
        cutoff = self.clock() - int(self.timing.expire * 1000)
        async with self.db.write() as conn:
            await fence(conn)
            result = await conn.execute(
                delete(cluster_discovery).where(
                    (cluster_discovery.c.cluster_name == self.identity.cluster_name)
                    & (cluster_discovery.c.last_ping_at < cutoff)
                )
            )
        if result.rowcount:
            log.info("removed expired discovery rows", extra={"count": result.rowcount})
        return int(result.rowcount)


async def read_nodes(db: Database, cluster_name: str) -> list[NodeInfo]:
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(cluster_discovery)
                .where(
                    (cluster_discovery.c.type == CDS_TYPE_APP)
                    & (cluster_discovery.c.cluster_name == cluster_name)
                )
                .order_by(cluster_discovery.c.create_at, cluster_discovery.c.id)
            )
        ).mappings()
        return [NodeInfo.from_row(row) for row in rows]


COMPARED = ("version", "schema_version", "config_hash")
STATES = {"ok": "green", "mixed": "yellow", "mismatch": "red", "stale": "red"}


def cluster_view(
    nodes: Sequence[NodeInfo],
    *,
    now: int,
    live_seconds: float,
    me: str | None = None,
    leader_id: str | None = None,
) -> list[dict[str, Any]]:
    """Mattermost's ClusterInfo per node, plus status `ok` | `mixed` | `mismatch` | `stale`, its
    colour (`state`: green, yellow, red) and reasons.

    Live nodes are compared with the majority of live nodes (`agreement.py`): the version with
    all of them, the schema revision and config hash with those of the same version (a release
    knows other migrations and may have other settings). Live nodes running two versions one
    minor apart are a rolling upgrade: every live node is `mixed` (yellow) with the mix as its
    reason, unless it mismatches otherwise. `me` breaks ties (the answering node), else the
    oldest node does.
    """
    live = [n for n in nodes if n.is_live(now, live_seconds)]
    order = [n.id for n in live]
    mix = version_mix(live)

    out = []
    for node in nodes:
        reasons: list[str] = []
        if not node.is_live(now, live_seconds):
            status = "stale"
            reasons.append(f"no heartbeat for {(now - node.last_ping_at) / 1000:.0f}s")
        else:
            peers = {"version": live}
            peers["schema_version"] = peers["config_hash"] = same_version(node, live)
            for name in COMPARED:
                values = {n.id: str(getattr(n, name)) for n in peers[name]}
                expected = majority(values, order, me)
                value = str(getattr(node, name))
                if value == expected or (name == "version" and mix is not None):
                    continue
                if name == "version" and not outside_window(node, live):
                    continue  # a minority in a mix with a third version outside the window
                reasons.append(f"{name} {value} differs from {expected} (majority)")
            status = "mismatch" if reasons else "ok"
            if mix is not None:
                reasons.append(mix)
                status = "mixed" if status == "ok" else status
        out.append(
            {
                "id": node.id,
                "version": node.version,
                "schema_version": node.schema_version,
                "config_hash": node.config_hash,
                "ipaddress": str(node.props.get("ipaddress", "")),
                "hostname": node.hostname,
                "port": node.port,
                "node_name": node.node_name,
                "last_heartbeat": node.last_ping_at,
                "started_at": node.create_at,
                "websocket_connections": int(node.props.get("websocket_connections", 0)),
                "leader": node.id == leader_id,
                "status": status,
                "state": STATES[status],
                "reasons": reasons,
                "database": node.props.get("database") or {},
                "restart_required": list(node.props.get("restart_required") or []),
            }
        )
    return out


def format_status_table(view: Sequence[Mapping[str, Any]], now: int) -> str:
    """The status view as a plain-text table, one line per node, reasons below."""
    headers = ["NODE", "ID", "ADDRESS", "VERSION", "SCHEMA", "CONFIG", "WS", "HEARTBEAT", "STATUS"]
    rows = []
    for node in view:
        age = max(0, now - int(node["last_heartbeat"])) / 1000
        rows.append(
            [
                str(node["node_name"]) + (" *" if node.get("leader") else ""),
                str(node["id"]),
                f"{node['ipaddress']}:{node['port']}",
                str(node["version"]),
                str(node["schema_version"]),
                str(node["config_hash"]),
                str(node["websocket_connections"]),
                f"{age:.1f}s ago",
                str(node["status"]),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for node, row in zip(view, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(f"    {node['node_name']}: {reason}" for reason in node["reasons"])
        lines.extend(f"    {node['node_name']}: {line}" for line in database_lines(node))
    if any(node.get("leader") for node in view):
        lines.append("* leader")
    return "\n".join(lines)


def database_lines(node: Mapping[str, Any]) -> list[str]:
    """The node's database roles and their health in words (store/monitor.py's status)."""
    db = node.get("database") or {}
    if not db or db.get("driver") == "sqlite":
        return []
    primary = db.get("primary") or {}
    lines = [
        f"database primary {primary.get('address', '?')}: "
        + ("ok" if primary.get("healthy") else f"DOWN ({primary.get('reason', '')})")
    ]
    for replica in [*(db.get("replicas") or []), *(db.get("search_replicas") or [])]:
        if replica.get("healthy"):
            health = f"ok, lag {replica.get('lag_bytes')} B / {replica.get('lag_seconds')} s"
        else:
            health = f"OUT ({replica.get('reason', '')})"
        lines.append(f"database {replica.get('name')} {replica.get('address')}: {health}")
    restart = node.get("restart_required") or []
    if restart:
        lines.append("restart required: " + ", ".join(restart))
    return lines
