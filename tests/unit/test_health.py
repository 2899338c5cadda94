"""The readiness monitor: failing and slow probes make the node not ready; it recovers alone."""

from __future__ import annotations

import asyncio

from hubbub.observability.health import HealthMonitor


async def test_failing_probe_then_recovery() -> None:
    broken = True

    async def database() -> None:
        if broken:
            raise ConnectionRefusedError("connection refused")

    monitor = HealthMonitor({"database": database}, interval=60, timeout=1)
    await monitor.probe_once()
    assert monitor.problems() == ["database: connection refused"]
    broken = False
    await monitor.probe_once()
    assert monitor.problems() == []


async def test_slow_probe_is_failing_but_never_cancelled() -> None:
    release = asyncio.Event()
    finished = []

    async def slow() -> None:
        await release.wait()
        finished.append(True)

    monitor = HealthMonitor({"bus": slow}, interval=60, timeout=0.05)
    await monitor.probe_once()
    assert monitor.problems() == ["bus: no answer within 0.05s"]
    release.set()
    await monitor.probe_once()
    assert finished == [True]  # the first run completed instead of being cancelled
    assert monitor.problems() == []


async def test_sources_are_reported() -> None:
    monitor = HealthMonitor(sources=[lambda: ["file store: not shared"]])
    assert monitor.problems() == ["file store: not shared"]
