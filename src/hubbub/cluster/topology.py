"""Refusing a broken topology loudly: local file storage that the nodes do not actually share.

With the local file driver every node of a cluster must see the same directory (a NAS mounted on
each), or an attachment uploaded through one node is a 404 on the next. Each node writes
`cluster/<node_id>.marker` into its file store when it starts. After every heartbeat it tries to
read the marker of each other live node; a peer gets two heartbeats from the moment it is first seen
(its marker may still be on its way through NFS) before an unreadable marker counts. Then the node
logs one error naming the cause and reports it to the node's health monitor, so the health check
answers non-200 and the load balancer stops sending it traffic. It recovers by itself once the
markers are readable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from hubbub.cluster.discovery import Discovery, NodeInfo
from hubbub.cluster.leader import run_as_leader
from hubbub.files import FileBackend, LocalFileBackend
from hubbub.ids import now_ms
from hubbub.lifecycle import Component

log = logging.getLogger("hubbub.cluster")

MARKER_DIR = "cluster"


def marker_path(node_id: str) -> str:
    return f"{MARKER_DIR}/{node_id}.marker"


class SharedStorageCheck(Component):
    """Checks, after each heartbeat, that this node can read the other live nodes' markers."""

    name = "topology"

    def __init__(
        self,
        files: FileBackend,
        node_id: str,
        node_name: str,
        *,
        enabled: bool,
        grace_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = files
        self.node_id = node_id
        self.node_name = node_name
        self.enabled = enabled
        self.grace_seconds = grace_seconds
        self.monotonic = monotonic
        self._problems: dict[str, str] = {}
        self._first_seen: dict[str, float] = {}

    @property
    def directory(self) -> str:
        return str(self.files.root) if isinstance(self.files, LocalFileBackend) else "?"

    def _marker(self) -> bytes:
        body = {"node_id": self.node_id, "node_name": self.node_name, "written_at": now_ms()}
        return json.dumps(body).encode()

    async def start(self) -> None:
        if self.enabled:
            await self.files.write(marker_path(self.node_id), self._marker())

    async def stop(self) -> None:
        if self.enabled:
            try:
                await self.files.remove(marker_path(self.node_id))
            except OSError:
                log.warning("could not remove this node's marker file", exc_info=True)

    async def _can_read(self, peer_id: str) -> bool:
        try:
            data = json.loads(await self.files.read(marker_path(peer_id)))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("node_id") == peer_id

    async def observe(self, live: Sequence[NodeInfo]) -> None:
        """Heartbeat listener: re-checks every live peer's marker."""
        if not self.enabled:
            return
        if not await self.files.exists(marker_path(self.node_id)):
            await self.files.write(marker_path(self.node_id), self._marker())
        now = self.monotonic()
        peers = {n.id: n for n in live if n.id != self.node_id}
        for gone in set(self._first_seen) - set(peers):
            self._first_seen.pop(gone, None)
            self._problems.pop(gone, None)
        for peer in peers.values():
            first = self._first_seen.setdefault(peer.id, now)
            if await self._can_read(peer.id):
                if self._problems.pop(peer.id, None) is not None:
                    log.info(
                        "file store is shared again: node's marker is readable",
                        extra={"peer": peer.node_name, "peer_id": peer.id},
                    )
                continue
            if now - first < self.grace_seconds or peer.id in self._problems:
                continue
            message = (
                "FileSettings.Directory is not shared between nodes: cannot read node "
                f"{peer.node_name}'s marker ({marker_path(peer.id)} under {self.directory}); "
                "mount the same shared directory on every node or use the amazons3 driver"
            )
            self._problems[peer.id] = message
            log.error(message, extra={"peer": peer.node_name, "peer_id": peer.id})

    def problems(self) -> list[str]:
        """Why this node must not take traffic (empty when the file store is shared)."""
        return list(self._problems.values())

    async def sweep(self, known_ids: Iterable[str], older_than_seconds: float) -> int:
        """Removes markers of nodes no longer in the discovery table (left behind by crashes)."""
        if not self.enabled or not isinstance(self.files, LocalFileBackend):
            return 0
        known = set(known_ids) | {self.node_id}
        directory = self.files.root / MARKER_DIR
        cutoff = time.time() - older_than_seconds

        def _sweep() -> int:
            removed = 0
            for path in directory.glob("*.marker") if directory.is_dir() else ():
                try:
                    if path.stem not in known and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except OSError:
                    continue
            return removed

        return await asyncio.to_thread(_sweep)


class ClusterCleanup:
    """Leader duty: drop expired discovery rows (fenced by the leader's token) and the markers of
    nodes gone for good."""

    def __init__(self, discovery: Discovery, storage: SharedStorageCheck) -> None:
        self.discovery = discovery
        self.storage = storage

    async def run(self, token: int) -> None:
        if not self.discovery.enabled:
            return
        await self.discovery.delete_expired(lambda conn: run_as_leader(conn, token))
        known = [node.id for node in await self.discovery.all_nodes()]
        await self.storage.sweep(known, self.discovery.timing.expire)
