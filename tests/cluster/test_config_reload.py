"""Reload and recycle reach every node; a bad config.json is refused and the running config
stays. Two real nodes on one PostgreSQL and Redis, each with its own config.json."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import cli
from tests.support.cluster import Cluster, start_cluster, write_config
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.rest import Account, Rest
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres


def sql(database_url: str, query_timeout: int) -> dict[str, Any]:
    return {"DriverName": "postgres", "DataSource": database_url, "QueryTimeout": query_timeout}


@pytest.fixture(scope="module")
def nodes(postgres: PostgresInstance) -> Iterator[Cluster]:
    url = fresh_postgres_database(postgres)
    cluster = start_cluster(
        url,
        nodes=2,
        with_nginx=False,
        settings={"MM_CLUSTERSETTINGS_HEARTBEATSECONDS": "1"},
        config_json={"SqlSettings": sql(url, 30)},
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def admin(nodes: Cluster) -> Iterator[tuple[Rest, Account]]:
    rest = Rest(nodes[0].url)
    try:
        yield rest, rest.user(None, "admin")
    finally:
        rest.close()


def write_all(nodes: Cluster, config: dict[str, Any]) -> None:
    for node in nodes:
        write_config(node.server.workdir, config)


def hashes(rest: Rest, admin: Account) -> dict[str, str]:
    return {
        n["node_name"]: n["config_hash"] for n in rest.call("GET", "/cluster/status", admin.token)
    }


def wait_converged(rest: Rest, admin: Account, old: set[str]) -> dict[str, str]:
    def converged() -> dict[str, str] | None:
        now = hashes(rest, admin)
        values = set(now.values())
        return now if len(now) == 2 and len(values) == 1 and not values & old else None

    return wait_until(converged, 15, "both nodes to report the same new config hash")


def test_reload_reaches_every_node_and_lists_restart_required(
    nodes: Cluster, admin: tuple[Rest, Account]
) -> None:
    rest, user = admin
    before = set(hashes(rest, user).values())
    assert len(before) == 1
    write_all(
        nodes,
        {"SqlSettings": sql(nodes.database_url, 20), "TeamSettings": {"SiteName": "Renamed"}},
    )
    answer = rest.call("POST", "/config/reload", user.token)
    assert answer["status"] == "OK"
    assert answer["applied"] == ["SqlSettings.QueryTimeout"]
    assert answer["restart_required"] == ["TeamSettings.SiteName"]
    wait_converged(rest, user, before)
    status = rest.call("GET", "/cluster/status", user.token)
    assert all(n["restart_required"] == ["TeamSettings.SiteName"] for n in status), status
    assert all(n["database"]["primary"]["healthy"] for n in status), status


def test_a_bad_file_is_refused_with_its_key_path(
    nodes: Cluster, admin: tuple[Rest, Account]
) -> None:
    rest, user = admin
    before = hashes(rest, user)
    write_all(nodes, {"SqlSettings": {**sql(nodes.database_url, 20), "QueryTimeout": -5}})
    body = rest.call("POST", "/config/reload", user.token, expect=500)
    assert body["id"] == "api.config.reload_config.app_error"
    assert "SqlSettings.QueryTimeout" in body["message"]
    assert hashes(rest, user) == before  # nothing changed, on either node
    # Only a system admin may reload.
    other = rest.user(user, "plain")
    rest.call("POST", "/config/reload", other.token, expect=403)
    rest.call("POST", "/database/recycle", other.token, expect=403)


def test_sighup_and_the_cli_reload_every_node(nodes: Cluster, admin: tuple[Rest, Account]) -> None:
    rest, user = admin
    before = set(hashes(rest, user).values())
    write_all(nodes, {"SqlSettings": sql(nodes.database_url, 11)})
    nodes[1].server.proc.send_signal(signal.SIGHUP)
    after_hup = set(wait_converged(rest, user, before).values())

    write_all(nodes, {"SqlSettings": sql(nodes.database_url, 12)})
    done = cli.run("config", "reload", cwd=nodes[0].server.workdir, env=nodes[0].env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent to 2 node(s)" in done.stdout, done.stdout
    wait_converged(rest, user, before | after_hup)

    # A bad file is refused by the command before anything is sent.
    write_config(nodes[0].server.workdir, {"SqlSettings": {"QueryTimeout": "soon"}})
    refused = cli.run("config", "reload", cwd=nodes[0].server.workdir, env=nodes[0].env)
    assert refused.returncode == 2
    assert "SqlSettings.QueryTimeout" in refused.stderr


def test_recycle_reaches_every_node(nodes: Cluster, admin: tuple[Rest, Account]) -> None:
    rest, user = admin
    before = [n.metric("hubbub_db_recycles_total") for n in nodes]
    assert rest.call("POST", "/database/recycle", user.token) == {"status": "OK"}
    wait_until(
        lambda: all(
            n.metric("hubbub_db_recycles_total") > b for n, b in zip(nodes, before, strict=True)
        ),
        10,
        "both nodes to recycle their pools",
    )
    rest.call("GET", "/users/me", user.token)  # and the node still serves

    # `hubbub db recycle`: over the cluster bus, and through one node's endpoint with --url
    # (the command loads config.json first: a valid one again, after the tests above).
    write_all(nodes, {"SqlSettings": sql(nodes.database_url, 12)})
    for extra in ([], ["--url", nodes[1].url, "--token", user.token]):
        before = [n.metric("hubbub_db_recycles_total") for n in nodes]
        done = cli.run("db", "recycle", *extra, cwd=nodes[0].server.workdir, env=nodes[0].env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert ("sent to 2 node(s)" if not extra else '"status": "OK"') in done.stdout, done.stdout
        wait_until(
            lambda before=before: all(
                n.metric("hubbub_db_recycles_total") > b for n, b in zip(nodes, before, strict=True)
            ),
            10,
            f"both nodes to recycle their pools (hubbub db recycle {' '.join(extra[:1])})",
        )
        rest.call("GET", "/users/me", user.token)
