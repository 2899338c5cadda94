"""Readiness of this node, probed in the background so the health check itself stays cheap.

`problems()` lists, in plain words, why the node should not get traffic right now (the
database is unreachable, the event bus is down, the file store is not shared, ...). The load
balancer's health check (`/api/v4/system/ping`) answers non-200 while the list is not empty, and
the node rejoins by itself when the probes pass again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("hubbub.health")

Probe = Callable[[], Awaitable[None]]
Problems = Callable[[], list[str]]


class HealthMonitor:
    def __init__(self, interval: float = 2.0, timeout: float = 3.0) -> None:
        self.interval = interval
        self.timeout = timeout
        self._probes: dict[str, Probe] = {}
        self._sources: list[Problems] = []
        self._failing: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def add_probe(self, name: str, probe: Probe) -> None:
        """An async check run every interval; raising (or timing out) marks `name` failing."""
        self._probes[name] = probe

    def add_source(self, source: Problems) -> None:
        """A synchronous source of problems kept by another component."""
        self._sources.append(source)

    def problems(self) -> list[str]:
        found = [f"{name}: {why}" for name, why in sorted(self._failing.items())]
        for source in self._sources:
            found.extend(source())
        return found

    async def probe_once(self) -> None:
        for name, probe in self._probes.items():
            try:
                await asyncio.wait_for(probe(), self.timeout)
            except Exception as exc:
                why = str(exc) or type(exc).__name__
                if name not in self._failing:
                    log.error("node not ready", extra={"check": name, "cause": why})
                self._failing[name] = why
            else:
                if self._failing.pop(name, None) is not None:
                    log.info("node ready again", extra={"check": name})

    async def start(self) -> None:
        await self.probe_once()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.probe_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
