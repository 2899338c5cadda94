"""Shared fixtures of the contract tier: Redis under Sentinel (1 master, 1 replica, 3 sentinels),
started once for the session's Sentinel variants of the Redis-backed contracts. Tests that fail
the master over start their own (`tests.support.sentinel.start_sentinel_set`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sentinel import SentinelSet, start_sentinel_set


@pytest.fixture(scope="session")
def sentinel_set() -> Iterator[SentinelSet]:
    found = start_sentinel_set()
    try:
        yield found
    finally:
        found.stop()
