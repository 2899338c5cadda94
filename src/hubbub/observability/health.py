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
from collections.abc import Awaitable, Callable, Mapping, Sequence

from hubbub.lifecycle import Component

log = logging.getLogger("hubbub.health")

Probe = Callable[[], Awaitable[None]]
Problems = Callable[[], list[str]]


class HealthMonitor(Component):
    """`probes`: async checks run every interval, by name; raising (or running longer than
    `timeout`) marks one failing. `sources`: synchronous sources of problems kept by other
    components (the realtime backends, the shared-storage check). `degradations`: sources of
    what is impaired while the node still serves (Redis unreachable: events wait in the
    outbox); reported, but the node stays ready."""

    def __init__(
        self,
        probes: Mapping[str, Probe] | None = None,
        sources: Sequence[Problems] = (),
        *,
        degradations: Sequence[Problems] = (),
        interval: float = 2.0,
        timeout: float = 3.0,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._probes = dict(probes or {})
        self._sources = tuple(sources)
        self._degradations = tuple(degradations)
        self._failing: dict[str, str] = {}
        # Probes are never cancelled (cancelling a database call midway can wedge its
        # connection); one still running after `timeout` simply counts as failing.
        self._inflight: dict[str, tuple[asyncio.Task[None], float]] = {}
        self._task: asyncio.Task[None] | None = None

    def problems(self) -> list[str]:
        found = [f"{name}: {why}" for name, why in sorted(self._failing.items())]
        for source in self._sources:
            found.extend(source())
        return found

    def degraded(self) -> list[str]:
        found: list[str] = []
        for source in self._degradations:
            found.extend(source())
        return found

    def _mark(self, name: str, why: str | None) -> None:
        if why is None:
            if self._failing.pop(name, None) is not None:
                log.info("node ready again", extra={"check": name})
            return
        if name not in self._failing:
            log.error("node not ready", extra={"check": name, "cause": why})
        self._failing[name] = why

    def _collect(self, name: str, task: asyncio.Task[None]) -> None:
        exc = task.exception()
        self._mark(name, None if exc is None else (str(exc) or type(exc).__name__))

    async def probe_once(self) -> None:
        loop = asyncio.get_running_loop()
        for name, probe in self._probes.items():
            running = self._inflight.get(name)
            if running is None:
                new_task: asyncio.Task[None] = loop.create_task(_run_probe(probe))
                self._inflight[name] = running = (new_task, loop.time())
            task, started = running
            # Give a fresh probe a moment to finish so the common case is decided now.
            await asyncio.wait({task}, timeout=max(0.0, self.timeout - (loop.time() - started)))
            if task.done():
                del self._inflight[name]
                self._collect(name, task)
            else:
                self._mark(name, f"no answer within {self.timeout:g}s")

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
        pending = [task for task, _ in self._inflight.values()]
        if pending:
            await asyncio.wait(pending, timeout=self.timeout)


async def _run_probe(probe: Probe) -> None:
    await probe()
