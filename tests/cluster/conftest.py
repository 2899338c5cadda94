"""The cluster tier: three real `hubbub serve` nodes on one PostgreSQL database and one Redis,
with nginx in front (tests/support/cluster.py), spoken to over real sockets.

Each test module gets its own cluster (`cluster`), on a fresh database copied from the session's
migrated template. Tests that kill a node or restart Redis leave the repair to the autouse
`all_nodes_up` fixture, which restarts whatever is down before the next test. The helpers the
tests read sockets with (`Stream`, `RawWS`, `Rest`) live in tests/support.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, start_cluster
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.rest import Org, Rest, make_org


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    """Extra MM_* settings for every node; a module overrides this fixture to change them."""
    return {}


@pytest.fixture(scope="module")
def cluster(postgres: PostgresInstance, cluster_settings: dict[str, str]) -> Iterator[Cluster]:
    started = start_cluster(fresh_postgres_database(postgres), settings=cluster_settings)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(autouse=True)
def all_nodes_up(request: pytest.FixtureRequest) -> None:
    """Before each test of this tier, every node of the module's cluster is running."""
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").ensure_all_running()


@pytest.fixture(scope="module")
def rests(cluster: Cluster) -> Iterator[list[Rest]]:
    """One REST client per node (index as in `cluster`)."""
    clients = [Rest(node.url) for node in cluster]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


@pytest.fixture(scope="module")
def lb(cluster: Cluster) -> Iterator[Rest]:
    """A REST client through nginx."""
    client = Rest(cluster.nginx_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def org(rests: list[Rest]) -> Org:
    return make_org(rests[0])
