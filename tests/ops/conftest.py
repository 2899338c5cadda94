"""The ops tier: operator-facing behaviour against real processes (rate limiting through nginx
and across nodes sharing Redis, `hubbub doctor` against nginx configured well and badly and
against a three-node cluster, the log file across a Redis restart). Fixtures start their own
servers; the session's PostgreSQL comes from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, start_cluster
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.ratelimit import RATE_LIMIT_SETTINGS
from tests.support.rest import Account, Rest


@pytest.fixture(scope="session")
def ops_cluster(postgres: PostgresInstance) -> Iterator[Cluster]:
    """Three nodes on PostgreSQL and one Redis behind nginx, rate limiting on (shared by the
    rate-limit and doctor modules: one cluster start for the tier)."""
    started = start_cluster(fresh_postgres_database(postgres), settings=RATE_LIMIT_SETTINGS)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(autouse=True)
def ops_cluster_up(request: pytest.FixtureRequest) -> None:
    """Every node and Redis running before each test that uses the cluster."""
    if "ops_cluster" in request.fixturenames:
        request.getfixturevalue("ops_cluster").ensure_all_running()


@pytest.fixture(scope="session")
def ops_admin(ops_cluster: Cluster) -> Account:
    """The cluster's first user: a system admin."""
    rest = Rest(ops_cluster[0].url)
    try:
        return rest.user(None, "admin")
    finally:
        rest.close()
