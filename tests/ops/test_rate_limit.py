"""Rate limiting against real servers: one `hubbub serve` behind a real nginx, then three nodes
behind nginx sharing one Redis.

Settings are small so a burst is quick: PerSec=2, MaxBurst=19, a bucket of 20 requests that
refills one request every 0.5 s. Counts allow for the refill during the burst (elapsed x 2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.nginx import Nginx
from tests.support.ops_nginx import start_proxy
from tests.support.ratelimit import LIMIT, PER_SEC, RATE_LIMIT_SETTINGS
from tests.support.rest import Account, Rest
from tests.support.server import ServerProcess, start_server
from tests.support.wait import wait_until
from tests.support.ws import RawWS, hello_of

LIMITS = RATE_LIMIT_SETTINGS
ERROR_ID = "api.context.rate_limit_exceeded.app_error"


def _burst(
    client: httpx.Client, n: int, *, token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[list[httpx.Response], float]:
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    answers = [
        client.get(
            "/api/v4/users/me" if token else "/api/v4/config/client?format=old", headers=all_headers
        )
        for _ in range(n)
    ]
    return answers, time.monotonic() - started


def _allowed(answers: list[httpx.Response]) -> int:
    return sum(1 for a in answers if a.status_code == 200)


def _max_allowed(elapsed: float) -> int:
    return LIMIT + int(elapsed * PER_SEC) + 1


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("ratelimit-node")
    server = start_server(workdir, {**LIMITS, "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy(node: ServerProcess) -> Iterator[Nginx]:
    server = start_proxy([node.port])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def people(node: ServerProcess) -> Iterator[list[Account]]:
    """An admin and eleven users, set up through the node as 127.0.0.1 (their own bucket)."""
    rest = Rest(node.url)
    try:
        admin = rest.user(None, "admin")
        users = [admin]
        for _ in range(11):
            # Each login is anonymous, from 127.0.0.1: 13 of that address's 20.
            users.append(rest.user(admin, "office"))
        yield users
    finally:
        rest.close()


def test_a_burst_gets_429_with_mattermost_headers_others_and_health_are_unaffected(
    node: ServerProcess, proxy: Nginx, people: list[Account]
) -> None:
    alice, bob = people[1], people[2]
    with httpx.Client(base_url=f"http://127.0.0.1:{proxy.port}", timeout=10) as http:
        answers, elapsed = _burst(http, LIMIT + 10, token=alice.token)
        first = answers[0]
        assert first.status_code == 200
        assert first.headers["X-RateLimit-Limit"] == str(LIMIT)
        assert first.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)
        assert "Retry-After" not in first.headers
        refused = [a for a in answers if a.status_code == 429]
        assert refused, [a.status_code for a in answers]
        assert LIMIT <= _allowed(answers) <= _max_allowed(elapsed)
        r = refused[0]
        assert r.headers["X-RateLimit-Limit"] == str(LIMIT)
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert r.headers["Retry-After"] == "1"  # one request every 0.5 s, in whole seconds
        assert 1 <= int(r.headers["X-RateLimit-Reset"]) <= LIMIT // PER_SEC + 1
        assert r.headers["Content-Type"] == "application/json"
        body = r.json()
        assert body["id"] == ERROR_ID and body["status_code"] == 429
        assert body["message"] == "limit exceeded"
        assert body["request_id"] == r.headers["X-Request-Id"]

        # Another user (same address: nginx) still has a full bucket.
        other = http.get("/api/v4/users/me", headers={"Authorization": f"Bearer {bob.token}"})
        assert other.status_code == 200
        assert other.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)
        # The health check is never limited, and carries no limit headers.
        for _ in range(3 * LIMIT):
            ping = http.get("/api/v4/system/ping")
            assert ping.status_code == 200
            assert "X-RateLimit-Limit" not in ping.headers
    # Websockets are never limited: more upgrades than a bucket holds, in a row, all open
    # (they would take from alice's bucket, which her burst emptied and which refills at 2/s).
    for _ in range(LIMIT + 5):
        ws = RawWS.connect(proxy.port, token=alice.token)
        try:
            assert hello_of(ws)["event"] == "hello"
        finally:
            ws.close()
    # After Retry-After she is served again.
    wait_until(
        lambda: (
            httpx.get(
                f"{node.url}/api/v4/users/me", headers={"Authorization": f"Bearer {alice.token}"}
            ).status_code
            == 200
        ),
        5,
        "alice to be served again after Retry-After",
    )


def test_one_office_behind_a_trusted_proxy_is_not_limited_together(
    proxy: Nginx, people: list[Account]
) -> None:
    """Ten colleagues behind one office NAT (one address at nginx), each using most of a
    bucket: nobody is refused. Anonymous requests from that address share one bucket, and
    another address has its own."""
    office = {"X-Forwarded-For": "198.51.100.7"}
    colleagues = people[3:]
    with httpx.Client(base_url=f"http://127.0.0.1:{proxy.port}", timeout=10) as http:
        for person in colleagues:
            answers, _ = _burst(http, LIMIT - 2, token=person.token, headers=office)
            assert [a.status_code for a in answers] == [200] * (LIMIT - 2), person.username
        anonymous, elapsed = _burst(http, LIMIT + 10, headers=office)
        assert LIMIT <= _allowed(anonymous) <= _max_allowed(elapsed)
        assert anonymous[-1].status_code == 429
        elsewhere = http.get(
            "/api/v4/config/client?format=old", headers={"X-Forwarded-For": "198.51.100.8"}
        )
        assert elsewhere.status_code == 200
        assert elsewhere.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)


def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(node: ServerProcess) -> None:
    """A client at 127.0.0.2 (not in TrustedProxies) that claims a new address on every
    request still takes from one bucket: its own address's."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=node.url, transport=transport, timeout=10) as http:
        started = time.monotonic()
        answers = [
            http.get(
                "/api/v4/config/client?format=old",
                headers={"X-Forwarded-For": f"192.0.2.{i}", "X-Real-IP": f"192.0.2.{i}"},
            )
            for i in range(LIMIT + 10)
        ]
        elapsed = time.monotonic() - started
    assert LIMIT <= _allowed(answers) <= _max_allowed(elapsed)
    assert answers[-1].status_code == 429


# Three nodes, one Redis: one limit.


def test_the_limit_holds_across_three_nodes_sharing_redis(
    ops_cluster: Cluster, ops_admin: Account
) -> None:
    cluster = ops_cluster
    rest = Rest(cluster[0].url)
    try:
        carol = rest.user(ops_admin, "carol")
    finally:
        rest.close()
    auth = {"Authorization": f"Bearer {carol.token}"}
    clients = [httpx.Client(base_url=n.url, timeout=10) for n in cluster]
    lb = httpx.Client(base_url=cluster.nginx_url, timeout=10)
    try:
        started = time.monotonic()
        # Every node in turn, then through nginx: Mattermost would allow 3 x 20 (per node).
        answers = [clients[i % 3].get("/api/v4/users/me", headers=auth) for i in range(45)]
        answers += [lb.get("/api/v4/users/me", headers=auth) for _ in range(15)]
        elapsed = time.monotonic() - started
        by_node = {i: answers[i].status_code for i in range(3)}
        assert by_node == {0: 200, 1: 200, 2: 200}
        assert LIMIT <= _allowed(answers) <= _max_allowed(elapsed), (elapsed, _allowed(answers))
        assert answers[-1].status_code == 429

        # Redis gone: every node decides alone, nobody is blocked, and it is said once.
        cluster.redis.kill()
        dave_answers = [
            clients[1].get(
                "/api/v4/config/client?format=old", headers={"X-Forwarded-For": "203.0.113.5"}
            )
            for _ in range(5)
        ]
        assert [a.status_code for a in dave_answers] == [200] * 5
        wait_until(
            lambda: "rate limiting in this node's memory" in cluster[1].server.own_log(),
            5,
            "node1 to log that it limits in memory",
        )
        assert cluster[1].server.own_log().count("rate limiting in this node's memory") == 1
    finally:
        for client in clients:
            client.close()
        lb.close()
        cluster.redis.start_again()
        for node in cluster:
            node.wait_ready()  # Redis back: every node healthy again for the next test
