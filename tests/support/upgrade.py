"""A rolling upgrade as an operator does it (docs/upgrades.md), as a fault for the chaos run
(tests/support/chaos.py): node by node, SIGTERM (the node drains: unhealthy, websockets closed
with 1012, requests finished), wait for it to exit, start the current code on the same ports,
wait until it answers ready. After each node the cluster status, as the upgraded node answers
it, must show what the operator should see: yellow (`mixed`) while two versions run, every node
green (`ok`) on the new version at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from hubbub import __version__
from tests.support.chaos import ChaosLog, Faults
from tests.support.cluster import Cluster
from tests.support.wait import wait_until_async


@dataclass
class UpgradeLog:
    drains: list[float] = field(default_factory=list)  # SIGTERM until the process exited
    starts: list[float] = field(default_factory=list)  # spawn until ready
    exit_codes: list[int] = field(default_factory=list)
    # The cluster status after each node: {node: (version, status, state, reasons)}
    views: list[dict[str, tuple[str, str, str, list[str]]]] = field(default_factory=list)


async def cluster_status(url: str, token: str) -> dict[str, tuple[str, str, str, list[str]]]:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        resp = await http.get(
            "/api/v4/cluster/status", headers={"Authorization": f"Bearer {token}"}
        )
        resp.raise_for_status()
        view: list[dict[str, Any]] = resp.json()
    return {
        n["node_name"]: (n["version"], n["status"], n.get("state", ""), n["reasons"]) for n in view
    }


def rolling_upgrade(
    cluster: Cluster, admin_token: str, *, first_after: float, between: float, record: UpgradeLog
) -> Faults:
    """Upgrades every node to the running code (this interpreter), `first_after` seconds into
    the run and `between` seconds apart. Runs to the end even if the writers finish first."""

    async def settled(url: str, want: Any, what: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def check() -> bool:
            seen.clear()
            seen.update(await cluster_status(url, admin_token))
            return bool(want(seen))

        try:
            await wait_until_async(check, 30, what, interval=0.25)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last view {seen}") from None
        return dict(seen)

    async def run(stop: asyncio.Event, log: ChaosLog) -> None:
        started = time.monotonic()
        await asyncio.sleep(first_after)  # pacing the upgrade, not synchronization
        for index, node in enumerate(cluster):
            began = time.monotonic()
            code = await asyncio.to_thread(node.stop, 30)
            drained = time.monotonic()
            record.drains.append(drained - began)
            record.exit_codes.append(code)
            node.python = sys.executable
            node.env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
            await asyncio.to_thread(node.start)
            record.starts.append(time.monotonic() - drained)
            log.events.append(
                f"{began - started:6.1f}s {node.name}: drained in {drained - began:.1f}s "
                f"(exit {code}), {__version__} ready {time.monotonic() - drained:.1f}s later"
            )
            last = index == len(cluster) - 1

            def want(view: dict[str, Any], last: bool = last) -> bool:
                if len(view) != len(cluster):
                    return False
                if last:
                    return all(v[0] == __version__ and v[1] == "ok" for v in view.values())
                return {v[2] for v in view.values()} == {"yellow"}

            record.views.append(
                await settled(
                    node.url, want, "every node green" if last else "the version mix in yellow"
                )
            )
            if not last:
                await asyncio.sleep(between)  # pacing

    return run
