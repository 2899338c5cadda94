"""Chaos with a checker (DESIGN §8): 30 clients and 5 writers through nginx while faults are
injected, then every client must have every committed post exactly once (over all of its
connections), in commit order per channel, and no write may take longer than 2 s. The run and the
checker live in tests/support/chaos.py (parameters there, HUBBUB_CHAOS_* for a longer run).

Two scenarios, each about 40 s of writing:

- node kills and Redis restarts: a random node SIGKILLed every ~5 s and restarted 0.2-2 s later;
  three times per run Redis is SIGKILLed and restarted empty, with a node SIGKILLed in the same
  second;
- Sentinel failover: the cluster's Redis is a master, a replica and three sentinels, all started
  here; halfway through, the master is SIGKILLed and the sentinels promote the replica.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.support.chaos import (
    ChaosParams,
    World,
    build_world,
    node_kills_and_redis_restarts,
    run_chaos,
    sentinel_failover,
)
from tests.support.cluster import Cluster, start_cluster
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.rest import Rest
from tests.support.sentinel import start_sentinel_set


@pytest.fixture(scope="module")
def params() -> ChaosParams:
    return ChaosParams.from_env()


@pytest.fixture
def world(rests: list[Rest], params: ChaosParams) -> Iterator[World]:
    yield build_world(rests[0], params, random.Random(params.seed))


async def test_chaos_node_kills_and_redis_restarts(
    cluster: Cluster,
    world: World,
    params: ChaosParams,
    postgres: PostgresInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    faults = node_kills_and_redis_restarts(cluster, params, random.Random(params.seed))
    report = await run_chaos(
        "node kills + Redis restarts", cluster, world, params, postgres, faults
    )
    with capsys.disabled():
        print("\n" + "\n".join(report.lines()))
    assert report.log.redis_restarts == params.redis_restarts
    report.assert_clean()


async def test_chaos_sentinel_failover(
    postgres: PostgresInstance, params: ChaosParams, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinels = start_sentinel_set()
    try:
        cluster = start_cluster(fresh_postgres_database(postgres), sentinels=sentinels)
        try:
            rest = Rest(cluster[0].url)
            try:
                world = build_world(rest, params, random.Random(params.seed))
            finally:
                rest.close()
            faults = sentinel_failover(cluster, sentinels, params, random.Random(params.seed))
            report = await run_chaos("Sentinel failover", cluster, world, params, postgres, faults)
        finally:
            cluster.close()
    finally:
        sentinels.stop()
    with capsys.disabled():
        print("\n" + "\n".join(report.lines()))
    assert report.log.failovers == 1
    report.assert_clean()
