"""A node whose database stops answering goes not-ready, and nothing more: its websockets stay.

Readiness is for the load balancer (no new work for this node); it must never turn into a drain.
A node on its own PostgreSQL has every PostgreSQL process frozen with SIGSTOP: the health check
fails ("database: no answer within 3s"), yet the open websocket gets no close frame and keeps
being pinged; after SIGCONT the node is ready again and the same socket receives the next post
with the next seq. Only SIGTERM (tests/realtime/test_keepalive_and_close_reasons.py) drains.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.node import Node, start_node
from tests.support.postgres import PostgresInstance, frozen
from tests.support.rest import Org, Rest, make_org
from tests.support.wait import wait_until
from tests.support.ws import hello_of, read_until_post


@pytest.fixture(scope="module")
def pg_node(
    tmp_path_factory: pytest.TempPathFactory, own_postgres: PostgresInstance
) -> Iterator[Node]:
    node = start_node(
        tmp_path_factory.mktemp("pg-node"),
        {
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": own_postgres.url,
            # Pings often, so the test sees the server keep the socket alive while frozen.
            "MM_SERVICESETTINGS_WEBSOCKETPINGINTERVALSECONDS": "1",
        },
    )
    try:
        yield node
    finally:
        node.server.stop()


def _ping(node: Node) -> httpx.Response:
    return httpx.get(f"{node.url}/api/v4/system/ping", timeout=10)


def test_a_hung_database_makes_the_node_not_ready_but_keeps_its_websockets(
    pg_node: Node, own_postgres: PostgresInstance
) -> None:
    rest = Rest(pg_node.url)
    try:
        org: Org = make_org(rest)
        ws = pg_node.connect(org.alice)
        hello_of(ws)
        first = rest.post(org.bob, org.public["id"], "before the freeze")
        seq_before = int(read_until_post(ws, first["id"])["seq"])
        assert _ping(pg_node).status_code == 200

        with frozen(own_postgres):
            unready = wait_until(
                lambda: (r := _ping(pg_node)).status_code != 200 and r,
                20,
                "the node to report not-ready while its database is frozen",
            )
            assert any(p.startswith("database") for p in unready.json()["problems"]), unready.text
            assert "draining" not in unready.json()
            # Stay not-ready for a while: the socket gets pinged, never closed.
            pings_before = len(ws.pings)
            held_until = time.monotonic() + 4
            while time.monotonic() < held_until:
                message = ws.recv_message(0.2)  # raises WSClosed on a close frame
                assert message is None, f"unexpected event while frozen: {message}"
            assert len(ws.pings) > pings_before, "the server stopped pinging the socket"
            assert pg_node.disconnects("server_drain") == 0

        wait_until(lambda: _ping(pg_node).status_code == 200, 30, "the node to be ready again")
        after = rest.post(org.bob, org.public["id"], "after the freeze")
        seen: list[dict[str, Any]] = []
        read_until_post(ws, after["id"], timeout=10, seen=seen)
        # The same connection goes on: no fresh hello, the sequence continues without a gap.
        assert [m["seq"] for m in seen] == list(range(seq_before + 1, seq_before + 1 + len(seen)))
        assert all(m["event"] != "hello" for m in seen), seen
        assert pg_node.disconnects("server_drain") == 0
        assert not pg_node.close_lines(), pg_node.close_lines()
        ws.close()
    finally:
        rest.close()
