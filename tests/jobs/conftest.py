"""Shared pieces of the job tests: two database pools on one fresh database (two nodes), a clock
moved by hand, and waiting for a condition with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hubbub.config import LoadedConfig
from hubbub.store.db import Database
from hubbub.store.migrate import migrate


class FakeClock:
    """Wall-clock milliseconds and a monotonic clock, moved by hand."""

    def __init__(self, ms: int = 1_800_000_000_000) -> None:
        self.ms = ms
        self.mono = 1000.0

    def wall(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
        self.mono += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def databases(node_config: LoadedConfig) -> AsyncIterator[tuple[Database, Database]]:
    first = Database(node_config.settings.SqlSettings)
    second = Database(node_config.settings.SqlSettings)
    await migrate(first)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Polls `check` until it is true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
