"""No primary reachable: writes fail fast with Mattermost's 500 AppError, reads carry on from
the replica, the health check reports the database, and the node recovers by itself."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.node import start_node
from tests.support.postgres import frozen
from tests.support.replicated import ReplicatedPostgres
from tests.support.rest import Rest, make_org
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres

QUERY_TIMEOUT = 5


def test_without_a_primary_writes_fail_fast_and_reads_go_on(
    pair: ReplicatedPostgres, replica_env: dict[str, str], tmp_path: Path
) -> None:
    node = start_node(
        tmp_path / "node", {**replica_env, "MM_SQLSETTINGS_QUERYTIMEOUT": str(QUERY_TIMEOUT)}
    )
    rest = Rest(node.url)
    try:
        org = make_org(rest)
        post = rest.post(org.alice, org.public["id"], "before the primary went away")
        pair.wait_replayed()
        pair.stop_primary("immediate")

        with httpx.Client(base_url=node.url + "/api/v4", timeout=30) as http:
            auth = {"Authorization": f"Bearer {org.alice.token}"}
            began = time.monotonic()
            resp = http.post(
                "/posts", json={"channel_id": org.public["id"], "message": "x"}, headers=auth
            )
            took = time.monotonic() - began
            assert resp.status_code == 500, resp.text
            body = resp.json()
            assert body["id"] == "api.context.server_error.app_error", body
            assert body["status_code"] == 500
            assert took < QUERY_TIMEOUT, f"the write took {took:.1f}s"

            # Reads go on from the replica, also for the user who wrote last.
            for who in (org.alice, org.bob):
                listing = rest.call("GET", f"/channels/{org.public['id']}/posts", who.token)
                assert post["id"] in listing["order"]

            def unhealthy() -> bool:
                r = http.get("/system/ping?get_server_status=true")
                return r.status_code == 500 and r.json().get("database_status") == "UNHEALTHY"

            wait_until(unhealthy, 15, "the ping to report the database")

            pair.start_primary()

            def writes_again() -> bool:
                r = http.post(
                    "/posts", json={"channel_id": org.public["id"], "message": "back"}, headers=auth
                )
                return r.status_code == 201

            wait_until(writes_again, 30, "writes to work again without a restart", interval=0.2)
            wait_until(
                lambda: http.get("/system/ping").status_code == 200, 15, "the ping to be OK again"
            )
    finally:
        rest.close()
        node.server.stop()


def test_a_hung_primary_fails_writes_within_the_query_timeout(
    pair: ReplicatedPostgres, replica_env: dict[str, str], tmp_path: Path
) -> None:
    """The primary's processes stopped (SIGSTOP): connections open, nothing answered, as behind
    a network partition that drops packets. A write still answers 500 within QueryTimeout, and
    reads go on from the replica."""
    node = start_node(
        tmp_path / "node", {**replica_env, "MM_SQLSETTINGS_QUERYTIMEOUT": str(QUERY_TIMEOUT)}
    )
    rest = Rest(node.url)
    try:
        org = make_org(rest)
        post = rest.post(org.alice, org.public["id"], "before the primary hung")
        pair.wait_replayed()
        with frozen(pair.primary), httpx.Client(base_url=node.url + "/api/v4", timeout=60) as http:
            auth = {"Authorization": f"Bearer {org.alice.token}"}
            for attempt in range(2):  # the pooled connection, then a new one
                began = time.monotonic()
                resp = http.post(
                    "/posts",
                    json={"channel_id": org.public["id"], "message": f"hung {attempt}"},
                    headers=auth,
                )
                took = time.monotonic() - began
                assert resp.status_code == 500, resp.text
                assert took < QUERY_TIMEOUT + 1, f"write {attempt} took {took:.1f}s"
            began = time.monotonic()
            listing = rest.call("GET", f"/channels/{org.public['id']}/posts", org.bob.token)
            assert post["id"] in listing["order"]
            assert time.monotonic() - began < QUERY_TIMEOUT + 1
        with httpx.Client(base_url=node.url + "/api/v4", timeout=30) as http:
            auth = {"Authorization": f"Bearer {org.alice.token}"}

            def writes_again() -> bool:
                r = http.post(
                    "/posts", json={"channel_id": org.public["id"], "message": "back"}, headers=auth
                )
                return r.status_code == 201

            wait_until(writes_again, 30, "writes to work again once the primary answers")
    finally:
        rest.close()
        node.server.stop()
