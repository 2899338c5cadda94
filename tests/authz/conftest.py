"""The authorization tier: one real `hubbub serve` (SQLite) per module, and the scene of
secrets and outsiders it holds (tests/support/authz_scene.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.authz_scene import Scene, make_scene
from tests.support.node import Node, start_node
from tests.support.rest import Rest


@pytest.fixture(scope="module")
def live_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = start_node(
        tmp_path_factory.mktemp("authz"),
        {
            "MM_SERVICESETTINGS_ENABLECUSTOMEMOJI": "true",
            "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
            "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
        },
    )
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
def scene(rest: Rest) -> Scene:
    return make_scene(rest)
