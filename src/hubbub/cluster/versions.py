"""Release versions and the rolling-upgrade window (docs/upgrades.md).

hubbub's versions are `MAJOR.MINOR.PATCH` (0.2.0). During a rolling upgrade the nodes of one
cluster may run two releases at once, as Mattermost's HA guide allows, but only one minor version
apart: a minor release only *expands* the schema, so the previous minor keeps working on it, and
the contracting step waits one release. Nodes two minors apart (or of another major) could meet a
schema that has already been contracted under one of them, so a node refuses to join such a
cluster.

The check (`VersionGate`) runs before anything else at start, before migrations: a node that is
too new must not migrate the schema under nodes that cannot read it. It reads the live rows of
`cluster_discovery` (each node announces its version there, `discovery.py`). The other refusal,
a schema newer than this build knows, is the migration runner's (`store/migrate.py`). Either
way the node logs why and `hubbub serve` exits with `REFUSED_EXIT_STATUS`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import inspect, select

from hubbub.ids import now_ms
from hubbub.lifecycle import Component
from hubbub.store.db import Database
from hubbub.store.tables import cluster_discovery

log = logging.getLogger("hubbub.cluster")

# `hubbub serve`'s exit status when the node refused to start for its version or its schema
# (a process manager should not restart it in a loop: another build is needed).
REFUSED_EXIT_STATUS = 3

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+.].*)?$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"not a MAJOR.MINOR.PATCH version: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    @property
    def line(self) -> str:
        """The release line a rolling upgrade is counted in: `0.2`."""
        return f"{self.major}.{self.minor}"

    def within_window(self, other: Version) -> bool:
        """True when both may run in one cluster: same major, at most one minor apart."""
        return self.major == other.major and abs(self.minor - other.minor) <= 1

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def within_window(a: str, b: str) -> bool:
    """Whether two announced versions may share a cluster (unparsable ones only if equal)."""
    try:
        return Version.parse(a).within_window(Version.parse(b))
    except ValueError:
        return a == b


def window_problem(mine: str, others: Iterable[tuple[str, str]]) -> str | None:
    """Why a node of version `mine` must not join nodes `(name, version)`, or None.

    Every live node must be within one minor of this one: a cluster mid-upgrade (0.1 and 0.2)
    takes either release, never 0.3."""
    outside = sorted({(name, v) for name, v in others if not within_window(mine, v)})
    if not outside:
        return None
    listed = ", ".join(f"{name} runs {v}" for name, v in outside)
    return (
        f"this node runs hubbub {mine}, more than one minor version away from the cluster "
        f"({listed}); a rolling upgrade may only mix two adjacent minor versions: upgrade "
        "the cluster one minor version at a time (docs/upgrades.md)"
    )


class RefusedToJoin(Exception):
    """This node must not join its cluster: the reason is the message."""


class VersionGate(Component):
    """At start, before migrations: refuses to join a cluster whose live nodes run a version
    outside the window (`window_problem`)."""

    def __init__(
        self,
        db: Database,
        *,
        cluster_name: str,
        hostname: str,
        port: int,
        version: str,
        live_seconds: float,
        enabled: bool,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.cluster_name = cluster_name
        # This node's identity: a row of its own earlier life (killed, not drained) is not a peer.
        self.identity = (hostname, port)
        self.version = version
        self.live_seconds = live_seconds
        self.enabled = enabled
        self.clock = clock

    async def live_versions(self) -> list[tuple[str, str]]:
        """(node name, version) of every live node of this cluster; none before the first
        migration created the table."""
        cutoff = self.clock() - int(self.live_seconds * 1000)
        async with self.db.primary.connect() as conn:
            exists = await conn.run_sync(
                lambda sync: inspect(sync).has_table(cluster_discovery.name)
            )
            if not exists:
                return []
            rows = await conn.execute(
                select(
                    cluster_discovery.c.hostname,
                    cluster_discovery.c.port,
                    cluster_discovery.c.version,
                    cluster_discovery.c.props,
                ).where(
                    (cluster_discovery.c.cluster_name == self.cluster_name)
                    & (cluster_discovery.c.last_ping_at >= cutoff)
                )
            )
            out = []
            for host, port, version, props in rows:
                if (host, port) == self.identity:
                    continue
                name = props.get("node_name") if isinstance(props, dict) else None
                out.append((str(name or f"{host}:{port}"), str(version)))
            return out

    async def start(self) -> None:
        if not self.enabled:
            return
        problem = window_problem(self.version, await self.live_versions())
        if problem is not None:
            raise RefusedToJoin(problem)
