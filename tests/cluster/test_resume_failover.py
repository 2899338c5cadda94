"""Resume anywhere (DESIGN §4 invariants 1 and 3): a client resumes on another node after a clean
disconnect or a SIGKILL of its node, the real `@mattermost/client` does so through nginx, an
event committed by a node that dies before publishing it is still delivered exactly once, and a
Redis that lost its data makes every client start over with a new connection id, never a
silent gap.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.clients import NodeClient
from tests.support.cluster import Cluster, ClusterNode
from tests.support.postgres import PostgresInstance
from tests.support.rest import Account, Org, Rest
from tests.support.stream import Message, Stream
from tests.support.wait import wait_until
from tests.support.ws import WSClosed, post_id_of

MISSED = 6


def _posted(stream: Stream) -> list[str]:
    return [pid for m in stream.events() if (pid := post_id_of(m))]


def _post_ids(rest: Rest, author: Account, channel_id: str, n: int, label: str) -> list[str]:
    return [rest.post(author, channel_id, f"{label} {i}")["id"] for i in range(n)]


def _assert_exact_replay(stream: Stream, next_seq: int, expected: list[str]) -> None:
    events = stream.events()
    assert events, f"{stream.label}: nothing replayed"
    assert not [e for e in events if e["event"] == "hello"], (
        f"{stream.label}: a resumed stream got a hello: {events}"
    )
    stream.check_seq(next_seq)
    assert _posted(stream) == expected, (
        f"{stream.label}: replay is not exactly the missed posts: {_posted(stream)} != {expected}"
    )


def _reconnects(node: ClusterNode, kind: str) -> float:
    return node.metric("mattermost_websocket_reconnects_total", type=kind)


# (a) and (b): raw clients


def test_resume_on_another_node_after_a_clean_disconnect(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a, public = rests[0], org.public["id"]
    on_b = Stream.open(cluster[1], org.bob)
    connection_id = on_b.hello()["data"]["connection_id"]
    on_b.expect_post(a.post(org.alice, public, "before")["id"])
    next_seq = on_b.last_seq() + 1
    on_b.close_cleanly()
    cluster[1].wait_close_line(connection_id)

    missed = _post_ids(a, org.alice, public, MISSED, "missed while away")
    resumed_before = _reconnects(cluster[2], "success")
    on_c = Stream.open(cluster[2], org.bob, connection_id=connection_id, sequence_number=next_seq)
    try:
        marker = a.post(org.alice, public, "after the resume")["id"]
        on_c.expect_post(marker)
        _assert_exact_replay(on_c, next_seq, [*missed, marker])
        assert _reconnects(cluster[2], "success") == resumed_before + 1
    finally:
        on_c.close()


def test_resume_on_another_node_after_sigkill(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a, public = rests[0], org.public["id"]
    on_b = Stream.open(cluster[1], org.bob)
    connection_id = on_b.hello()["data"]["connection_id"]
    on_b.expect_post(a.post(org.alice, public, "sync")["id"])
    start = len(on_b.events())
    # Posts racing the kill: some reach the socket before it dies, some do not.
    racing = _post_ids(a, org.alice, public, 3, "racing the kill")
    cluster.kill(1)
    closed = on_b.wait_closed(5)
    on_b.close()
    assert closed.tcp_only, f"a SIGKILLed node sent a close frame: {closed}"
    received = [pid for m in on_b.events()[start:] if (pid := post_id_of(m))]
    on_b.check_seq()
    next_seq = on_b.last_seq() + 1

    after_kill = _post_ids(a, org.alice, public, MISSED, "after the kill")
    on_c = Stream.open(cluster[2], org.bob, connection_id=connection_id, sequence_number=next_seq)
    try:
        marker = a.post(org.alice, public, "after the resume")["id"]
        on_c.expect_post(marker)
        expected = [*racing, *after_kill, marker]
        assert received == expected[: len(received)], (received, expected)
        _assert_exact_replay(on_c, next_seq, expected[len(received) :])
    finally:
        on_c.close()


# (c): the real @mattermost/client through nginx


def _client_posted(client: NodeClient) -> list[str]:
    return [e["post_id"] for e in client.events() if e["event"] == "posted"]


def _node_of(cluster: Cluster, client: NodeClient, connection_id: str) -> ClusterNode:
    name = ""

    def known() -> bool:
        nonlocal name
        name = cluster.node_of_connection(connection_id)
        return bool(name)

    client.wait(known, 5, f"the registry to name the node of {connection_id}")
    return cluster.node_named(name)


def _other_alive(cluster: Cluster, rests: list[Rest], *not_these: ClusterNode) -> Rest:
    for node, rest in zip(cluster, rests, strict=True):
        if node.alive and node not in not_these:
            return rest
    raise AssertionError("no other node alive")


def _assert_clean_stream(client: NodeClient, expected_posts: list[str]) -> None:
    events = client.events()
    assert [e["seq"] for e in events] == list(range(len(events))), events
    assert [e["event"] for e in events].count("hello") == 1, "resumed with a new hello"
    assert _client_posted(client) == expected_posts
    assert not client.of("missed"), "the missed-message listener fired"
    gaps = [line for line in client.of("log") if "missed websocket event" in line["text"]]
    assert not gaps, gaps


def test_real_client_through_nginx_survives_sigkill_and_restart_of_its_node(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    public = org.public["id"]
    client = NodeClient(
        f"ws://127.0.0.1:{cluster.nginx_port}/api/v4/websocket",
        org.carol.token,
        RETRY_MS="300",
        JITTER_MS="200",
    )
    try:
        client.wait(lambda: any(e["event"] == "hello" for e in client.events()), 10, "hello")
        connection_id = client.events()[0]["connection_id"]
        first = _node_of(cluster, client, connection_id)
        live = rests[0].post(org.alice, public, "live")["id"]
        client.wait(lambda: live in _client_posted(client), 10, "the live post")

        # SIGKILL of the node it is on; posts made while it reconnects through nginx.
        first.kill()
        rest = _other_alive(cluster, rests, first)
        missed = _post_ids(rest, org.alice, public, 5, "while reconnecting")
        client.wait(lambda: len(client.of("reconnect")) >= 1, 15, "the client to reconnect")
        marker = rest.post(org.alice, public, "after the failover")["id"]
        client.wait(lambda: marker in _client_posted(client), 10, "the posts after the failover")
        _assert_clean_stream(client, [live, *missed, marker])
        second = _node_of(cluster, client, connection_id)
        assert second is not first and second.alive, (first.name, second.name)
        resumed_on = second.metric("mattermost_websocket_reconnects_total", type="success")
        assert resumed_on >= 1, "the new node did not count the resume"

        # A clean restart (SIGTERM: drain with 1012) of the node it landed on.
        first.start()
        rest = _other_alive(cluster, rests, second)
        stopper = threading.Thread(target=second.stop)
        stopper.start()
        during = _post_ids(rest, org.alice, public, 5, "while draining")
        client.wait(lambda: len(client.of("reconnect")) >= 2, 20, "a second reconnect")
        stopper.join(30)
        assert not second.alive
        marker2 = rest.post(org.alice, public, "after the restart")["id"]
        client.wait(lambda: marker2 in _client_posted(client), 10, "posts after the restart")
        _assert_clean_stream(client, [live, *missed, marker, *during, marker2])
        assert any(str(c["code"]) == "1012" for c in client.of("close")), client.of("close")
        third = _node_of(cluster, client, connection_id)
        assert third is not second and third.alive
        second.start()
    finally:
        client.stop()


# (d): the outbox


def _database_name(cluster: Cluster) -> str:
    return urllib.parse.urlsplit(cluster.database_url).path.lstrip("/")


def test_event_committed_by_a_node_that_dies_before_publishing_is_delivered_once(
    cluster: Cluster, rests: list[Rest], org: Org, postgres: PostgresInstance
) -> None:
    public = org.public["id"]
    victim = cluster[2]
    victim.restart(
        {"HUBBUB_FAULT_CRASH_AFTER_COMMIT": "posted"}, module="tests.support.faulty_node"
    )
    bob_a = Stream.open(cluster[0], org.bob)
    carol_b = Stream.open(cluster[1], org.carol)
    streams = (bob_a, carol_b)
    try:
        for s in streams:
            s.hello()
        message = f"committed, then the node died {uuid.uuid4().hex}"
        sent = time.monotonic()
        with pytest.raises(httpx.TransportError):
            rests[2].http.post(
                "/posts",
                json={"channel_id": public, "message": message, "pending_post_id": message[-26:]},
                headers={"Authorization": f"Bearer {org.alice.token}"},
            )
        assert victim.server.proc.wait(10) == 137, "the fault injection did not kill the node"

        # The post is committed: another node reads it back from PostgreSQL.
        listing = rests[0].call("GET", f"/channels/{public}/posts?per_page=20", org.alice.token)
        found = [p for p in listing["posts"].values() if p["message"] == message]
        assert len(found) == 1, f"the post was not committed exactly once: {found}"
        post_id = found[0]["id"]

        # A surviving node's outbox sweeper publishes it within a few seconds.
        delays = []
        for s in streams:
            s.expect_post(post_id, timeout=10)
            delays.append(time.monotonic() - sent)
        db = _database_name(cluster)
        unpublished = (
            f"SELECT count(*) FROM outbox WHERE published_at = 0 AND body LIKE '%{post_id}%'"
        )
        wait_until(
            lambda: postgres.psql(unpublished, db) == "0",
            10,
            "the outbox row to be marked published",
        )
        republished = [
            line
            for node in cluster.alive()
            for line in node.server.log().splitlines()
            if "outbox republished events" in line
        ]
        assert republished, "no surviving node logged the republish"
        # Exactly once: nothing more of it up to a later post.
        marker = rests[0].post(org.alice, public, "after the crash")["id"]
        for s in streams:
            s.expect_post(marker)
            assert _posted(s).count(post_id) == 1, f"{s.label}: {_posted(s)}"
            s.check_seq()
        print(f"\noutbox republish: delivered {max(delays):.2f} s after the POST")
    finally:
        for s in streams:
            s.close()
        victim.restart()


# (e): Redis loses its data


def _problems(node: ClusterNode) -> Any:
    status, body = node.health()
    if (
        status == 200
        and isinstance(body, dict)
        and not body.get("problems")
        and not body.get("degraded")
    ):
        return None
    return status, body


def _degraded(node: ClusterNode) -> Any:
    """What a node that stays in the load balancer's pool says is impaired (None: nothing)."""
    status, body = node.health()
    if status == 200 and isinstance(body, dict) and body.get("degraded"):
        return body["degraded"]
    return None


def _reports_degraded(node: ClusterNode) -> Callable[[], bool]:
    return lambda: _degraded(node) is not None


def _healthy(node: ClusterNode) -> Callable[[], bool]:
    return lambda: _problems(node) is None


@pytest.fixture
def streams_everywhere(cluster: Cluster, org: Org) -> Iterator[list[Stream]]:
    opened = [
        Stream.open(cluster[i], user) for i, user in enumerate((org.alice, org.bob, org.carol))
    ]
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def test_redis_restart_gives_every_client_a_new_connection_id(
    cluster: Cluster,
    rests: list[Rest],
    org: Org,
    streams_everywhere: list[Stream],
    capsys: pytest.CaptureFixture[str],
) -> None:
    public = org.public["id"]
    old_ids = [s.hello()["data"]["connection_id"] for s in streams_everywhere]
    before = rests[0].post(org.admin, public, "before the outage")["id"]
    for s in streams_everywhere:
        s.expect_post(before)

    cluster.redis.kill()
    try:
        # Every node says so on its health check while Redis is away, and stays ready
        # (degraded, not down: CacheSettings.RedisOutageNotReady is false).
        for node in cluster:
            wait_until(_reports_degraded(node), 15, f"{node.name} to report degraded")
        reported = {node.name: _degraded(node) for node in cluster}
        # The operator console shows each node yellow with the reason (from their heartbeats).
        console_states: list[tuple[str, list[str]]] = []

        def console_shows_degraded() -> bool:
            answer = rests[0].http.get(
                "/hubbub/console", headers={"Authorization": f"Bearer {org.admin.token}"}
            )
            nodes = answer.json()["nodes"] if answer.status_code == 200 else []
            console_states[:] = [(n["state"], n["reasons"]) for n in nodes]
            return len(nodes) == len(cluster) and all(
                state == "yellow" and any(r.startswith("degraded: ") for r in reasons)
                for state, reasons in console_states
            )

        wait_until(console_shows_degraded, 20, "the console to show every node degraded")
        # A post during the outage commits to PostgreSQL and waits in the outbox, at once.
        started = time.monotonic()
        during = rests[1].http.post(
            "/posts",
            json={"channel_id": public, "message": "during the outage"},
            headers={"Authorization": f"Bearer {org.admin.token}"},
        )
        during_seconds = time.monotonic() - started
        assert during.status_code == 201, during.text
        assert during_seconds < 2, f"a POST during the outage took {during_seconds:.2f}s"
        # REST reads work too.
        assert (
            rests[2]
            .http.get(
                f"/channels/{public}/posts", headers={"Authorization": f"Bearer {org.admin.token}"}
            )
            .status_code
            == 200
        )
    finally:
        cluster.redis.start_again()

    # Each socket is closed by its node (nothing could be delivered meanwhile), and a resume
    # attempt gets a fresh hello with a new connection id.
    new_streams: list[Stream] = []
    retried = 0
    try:
        for s, old_id, node in zip(streams_everywhere, old_ids, cluster, strict=True):
            s.wait_closed(20)
            s.close()
            again, hello, refused = _resume_until_answered(
                node, _account_of(org, s), old_id, s.last_seq() + 1
            )
            new_streams.append(again)
            retried += refused
            assert hello["event"] == "hello", f"resumed across a Redis data loss: {hello}"
            assert hello["data"]["connection_id"] != old_id, "resumed across a Redis data loss"
        # The cluster works again by itself.
        for node in cluster:
            wait_until(_healthy(node), 20, f"{node.name} healthy again")
        after = rests[2].post(org.admin, public, "after the outage")["id"]
        for s in new_streams:
            s.expect_post(after, timeout=10)
            s.check_seq()
    finally:
        for s in new_streams:
            s.close()
    with capsys.disabled():
        print(
            f"\nduring the Redis outage: POST /posts answered {during.status_code} "
            f"in {during_seconds:.2f}s"
        )
        print(f"  reconnects refused with 1013 while the nodes recovered: {retried}")
        for name, problem in reported.items():
            print(f"  {name} health: 200, degraded: {problem}")


def _resume_until_answered(
    node: ClusterNode, account: Account, connection_id: str, sequence_number: int
) -> tuple[Stream, Message, int]:
    """Reconnects as the real client does until the first event comes: a node still
    recovering may close the attempt with 1013 (try again later), never drop it silently."""
    refused = 0
    deadline = time.monotonic() + 15
    while True:
        stream = Stream.open(
            node, account, connection_id=connection_id, sequence_number=sequence_number
        )
        try:
            first = stream.expect(lambda m: "event" in m, 5, "the first event")
            return stream, first, refused
        except WSClosed as closed:
            stream.close()
            assert closed.code == 1013 and not closed.tcp_only, (
                f"{node.name} refused a reconnect without a proper close: {closed}"
            )
            refused += 1
            assert time.monotonic() < deadline, f"{node.name} kept refusing reconnects"


def _account_of(org: Org, stream: Stream) -> Account:
    for account in (org.alice, org.bob, org.carol):
        if stream.label.startswith(account.username + "@"):
            return account
    raise KeyError(stream.label)
