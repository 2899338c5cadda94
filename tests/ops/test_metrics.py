"""The metrics for database calls, cluster messages and the outbox move on a real node
(`hubbub serve` with metrics on, SQLite, a real Redis), scraped from its /metrics endpoint:
Mattermost's `mattermost_db_store_time{method,success}` and connection counters, the cluster's
`mattermost_cluster_cluster_*`, hubbub's `hubbub_cluster_messages_received_total` and
`hubbub_outbox_*` (a backlog that grows while Redis is down and is drained when it is back).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.node import Node, start_node
from tests.support.redis import RedisInstance, start_redis
from tests.support.rest import Rest
from tests.support.wait import wait_until


@pytest.fixture
def redis() -> Iterator[RedisInstance]:
    instance = start_redis()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def node(tmp_path: Path, redis: RedisInstance) -> Iterator[Node]:
    started = start_node(
        tmp_path / "node",
        {
            "MM_CACHESETTINGS_CACHETYPE": "redis",
            "MM_CACHESETTINGS_REDISADDRESS": f"127.0.0.1:{redis.port}",
        },
    )
    try:
        yield started
    finally:
        started.server.stop()


def test_database_cluster_and_outbox_metrics_move(node: Node, redis: RedisInstance) -> None:
    rest = Rest(node.url)
    try:
        admin = rest.user(None, "admin")
        team = rest.team(admin)
        channel = rest.channel(admin, team["id"])
        store = "mattermost_db_store_time_count"
        created = {"method": "PostsService.create", "success": "true"}
        before = node.metric(store, **created)
        master = node.metric("mattermost_db_master_connections_total")

        rest.call(
            "POST", "/posts", admin.token, {"channel_id": channel["id"], "message": "hi"}, 201
        )
        assert node.metric(store, **created) == before + 1
        assert node.metric("mattermost_db_store_time_sum", **created) > 0
        assert node.metric("mattermost_db_master_connections_total") > master

        # A logout tells every node to drop the session: one cluster message, sent and heard.
        other = rest.user(admin, "other")
        sent = node.metric("mattermost_cluster_cluster_event_type_totals", name="revoke")
        requests = node.metric("mattermost_cluster_cluster_requests_total")
        timed = node.metric("mattermost_cluster_cluster_request_duration_seconds_count")
        rest.call("POST", "/users/logout", other.token)
        assert (
            node.metric("mattermost_cluster_cluster_event_type_totals", name="revoke") == sent + 1
        )
        assert node.metric("mattermost_cluster_cluster_requests_total") == requests + 1
        assert node.metric("mattermost_cluster_cluster_request_duration_seconds_count") == timed + 1
        wait_until(
            lambda: node.metric("hubbub_cluster_messages_received_total", name="revoke") >= 1,
            10,
            "the node to hear its own message",
        )

        # Redis away: posts commit, their events wait in the outbox.
        wait_until(
            lambda: node.metric("hubbub_outbox_backlog_rows") == 0, 10, "an empty outbox backlog"
        )
        deferred = node.metric("hubbub_outbox_deferred_total")
        republished = node.metric("hubbub_outbox_republished_total")
        redis.kill()
        for i in range(3):
            body = {"channel_id": channel["id"], "message": f"while Redis is down {i}"}
            rest.call("POST", "/posts", admin.token, body, 201)
        assert node.metric("hubbub_outbox_deferred_total") >= deferred + 3
        wait_until(
            lambda: (
                node.metric("hubbub_outbox_backlog_rows") >= 3
                and node.metric("hubbub_outbox_oldest_unpublished_seconds") >= 1
            ),
            15,
            "a backlog of three rows, the oldest a second old",
        )
        redis.start_again()
        wait_until(
            lambda: (
                node.metric("hubbub_outbox_backlog_rows") == 0
                and node.metric("hubbub_outbox_oldest_unpublished_seconds") == 0
            ),
            30,
            "the backlog drained",
        )
        assert node.metric("hubbub_outbox_republished_total") >= republished + 3
    finally:
        rest.close()
