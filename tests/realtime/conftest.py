"""The realtime tier: real `hubbub serve` processes, spoken to over real sockets.

The helpers live in tests/support: `RawWS` (ws.py) is a websocket client with nothing hidden,
`Rest` (rest.py) a synchronous client for setting up users, teams, channels and posts, `Node`
(node.py) a server process with its metrics endpoint and its close log. This file holds the
module-scoped fixtures: one server per test module and its cast of users. Every wait has a
deadline (tests/support/wait.py); nothing sleeps to synchronize.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.node import Node, keepalive_settings, start_node
from tests.support.postgres import PostgresInstance, start_postgres
from tests.support.rest import Org, People, Rest, make_org, make_people


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    """MM_* settings of the module's server; a module overrides this fixture to change them."""
    return keepalive_settings(1, 3)


@pytest.fixture(scope="module")
def live_node(
    tmp_path_factory: pytest.TempPathFactory, live_node_settings: dict[str, str]
) -> Iterator[Node]:
    """One server per test module (by default pinging every 1 s, giving up after 3 s). Not
    called `node`: the root conftest's `node` is an in-process Hubbub."""
    started = start_node(tmp_path_factory.mktemp("node"), live_node_settings)
    try:
        yield started
    finally:
        started.server.stop()


@pytest.fixture(scope="module")
def rest(live_node: Node) -> Iterator[Rest]:
    client = Rest(live_node.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def people(rest: Rest) -> People:
    return make_people(rest)


@pytest.fixture(scope="module")
def org(rest: Rest, people: People) -> Org:
    return make_org(rest, people)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresInstance]:
    """A PostgreSQL of the module's own, not the session's shared one: for tests that freeze
    it (SIGSTOP) or exhaust it."""
    instance = start_postgres()
    try:
        yield instance
    finally:
        instance.stop()
