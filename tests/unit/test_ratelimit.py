"""Rate limiting without sockets: the GCRA bucket math on a fake clock, the memory store's bound,
the fallback when Redis fails, the key a request takes from, and the proxy trust that decides
the client's address."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubbub.api.forwarded import TRUST_CACHE_SIZE, ForwardedHeaders, ProxyTrust
from hubbub.api.ratelimit import GCRA, MemoryBuckets, RateLimiter, rate_limit_key
from hubbub.config.settings import RateLimitConfig
from hubbub.observability.metrics import Metrics
from hubbub.services.session import Session
from tests.support.clock import FakeClock


def _buckets(per_sec: int = 10, burst: int = 4, size: int = 100) -> tuple[MemoryBuckets, Any]:
    clock = FakeClock()
    return MemoryBuckets(GCRA(per_sec, burst), size, clock.monotonic), clock


def test_a_fresh_bucket_allows_burst_plus_one_then_refuses() -> None:
    buckets, _ = _buckets(per_sec=10, burst=4)
    decisions = [buckets.take("k") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)
    refused = decisions[5]
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(0.1)  # one emission interval at 10/s
    assert refused.reset_after == pytest.approx(0.5)  # five requests to refill at 10/s
    headers = dict(refused.headers())
    assert headers[b"retry-after"] == b"1"  # rounded up to whole seconds
    assert headers[b"x-ratelimit-reset"] == b"1"
    assert b"retry-after" not in dict(decisions[0].headers())


def test_the_bucket_refills_at_per_sec() -> None:
    buckets, clock = _buckets(per_sec=10, burst=4)
    for _ in range(5):
        assert buckets.take("k").allowed
    assert not buckets.take("k").allowed
    clock.advance(0.1)  # one interval: exactly one more request
    assert buckets.take("k").allowed
    assert not buckets.take("k").allowed
    clock.advance(0.35)
    assert [buckets.take("k").allowed for _ in range(4)] == [True, True, True, False]
    clock.advance(10)  # long idle: a full burst again, not more
    assert [buckets.take("k").allowed for _ in range(6)] == [True] * 5 + [False]


def test_a_refused_request_does_not_spend_anything() -> None:
    buckets, clock = _buckets(per_sec=1, burst=0)
    assert buckets.take("k").allowed
    for _ in range(50):
        assert not buckets.take("k").allowed
    clock.advance(1.0)
    assert buckets.take("k").allowed


def test_keys_have_separate_buckets_and_the_store_is_bounded() -> None:
    buckets, _ = _buckets(per_sec=1, burst=0, size=3)
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed
    assert buckets.take("b").allowed
    for key in ("c", "d", "e"):
        assert buckets.take(key).allowed
    assert len(buckets.tats) == 3
    assert "a" not in buckets.tats  # least recently used went first
    assert buckets.take("a").allowed  # forgotten: a fresh bucket


class _BrokenScript:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, keys: list[str], args: list[int]) -> list[int]:
        self.calls += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


class _BrokenRedis:
    def __init__(self) -> None:
        self.script = _BrokenScript()

    def register_script(self, source: str) -> _BrokenScript:
        return self.script


def test_redis_failing_falls_back_to_memory_logs_once_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    redis = _BrokenRedis()
    metrics = Metrics()
    limiter = RateLimiter(
        RateLimitConfig(Enable=True, PerSec=1, MaxBurst=1),
        metrics,
        redis=redis,
        clock=clock.monotonic,
    )

    async def run() -> list[bool]:
        out = []
        for _ in range(3):
            out.append((await limiter.take("k")).allowed)
        clock.advance(1.5)  # past REDIS_RETRY: Redis is tried again (and fails again)
        out.append((await limiter.take("other")).allowed)
        return out

    with caplog.at_level("WARNING", logger="hubbub.ratelimit"):
        allowed = asyncio.run(run())
    assert allowed == [True, True, False, True]  # the memory bucket still limits
    assert redis.script.calls == 2  # not retried on every request while it is down
    assert metrics.ratelimit_store_errors._value.get() == 2
    lines = [r for r in caplog.records if r.name == "hubbub.ratelimit"]
    assert len(lines) == 1  # once per minute, not once per request
    assert "Connection refused" in lines[0].error  # type: ignore[attr-defined]
    assert lines[0].exc_info is None


def _session(user_id: str) -> Session:
    return Session(
        id="s", token="t", user_id=user_id, roles="system_user", csrf_token="", expires_at=0
    )


def test_authenticated_requests_are_keyed_by_user_not_by_address() -> None:
    s = RateLimitConfig(Enable=True)
    office = "203.0.113.7"
    assert rate_limit_key(s, _session("alice"), office, "") == "user:alice"
    assert rate_limit_key(s, _session("bob"), office, "") == "user:bob"
    assert rate_limit_key(s, None, office, "") == "addr:203.0.113.7"
    assert rate_limit_key(s.model_copy(update={"VaryByRemoteAddr": False}), None, office, "") == (
        "all"
    )
    with_header = s.model_copy(update={"VaryByHeader": "X-Tenant"})
    assert rate_limit_key(with_header, None, office, "ACME") == "addr:203.0.113.7|h:acme"
    long = rate_limit_key(with_header, None, office, "x" * 500)
    assert long.startswith("sha:") and len(long) < 80


def test_forwarded_address_is_believed_only_from_trusted_proxies() -> None:
    trust = ProxyTrust(["127.0.0.1/32", "10.0.0.0/8"], ["X-Forwarded-For", "X-Real-IP"])
    xff = {"x-forwarded-for": "198.51.100.1, 203.0.113.9, 10.0.0.5"}
    # From nginx: read from the right, skipping our own proxies; the client's claim is ignored.
    assert trust.client_address("127.0.0.1", xff) == "203.0.113.9"
    # From anyone else the header is ignored.
    assert trust.client_address("192.0.2.44", xff) == "192.0.2.44"
    assert trust.client_address("127.0.0.1", {"x-real-ip": "203.0.113.2"}) == "203.0.113.2"
    assert trust.client_address("127.0.0.1", {"x-forwarded-for": "garbage"}) == "127.0.0.1"
    assert trust.client_address("127.0.0.1", {}) == "127.0.0.1"
    assert trust.trusts("::ffff:10.1.2.3")
    proto = {"x-forwarded-proto": "https"}
    assert trust.scheme("127.0.0.1", proto, "http") == "https"
    assert trust.scheme("127.0.0.1", proto, "ws") == "wss"
    assert trust.scheme("192.0.2.44", proto, "http") == "http"
    nobody = ProxyTrust([], ["X-Forwarded-For"])
    assert nobody.client_address("127.0.0.1", xff) == "127.0.0.1"


def test_remembered_trust_answers_as_parsing_does_and_stays_bounded() -> None:
    trust = ProxyTrust(["127.0.0.1/32", "10.0.0.0/8"], ["X-Forwarded-For"])
    for _ in range(2):  # the second time from what was remembered
        assert trust.trusts("127.0.0.1") and trust.trusts("10.9.8.7")
        assert not trust.trusts("192.0.2.44") and not trust.trusts("garbage")
    for i in range(3 * TRUST_CACHE_SIZE):
        assert trust.trusts(f"10.0.{i // 256 % 256}.{i % 256}")
        assert not trust.trusts(f"192.0.{i // 256 % 256}.{i % 256}")
    assert len(trust._trusted) <= TRUST_CACHE_SIZE


def test_forwarded_headers_rewrite_the_scope_only_for_trusted_peers() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    layer = ForwardedHeaders(app, ProxyTrust(["127.0.0.1/32"], ["X-Forwarded-For"]))
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]

    async def run() -> None:
        for peer in ("127.0.0.1", "192.0.2.1"):
            scope = {"type": "http", "client": (peer, 5000), "scheme": "http", "headers": headers}
            await layer(scope, None, None)
        await layer({"type": "lifespan"}, None, None)

    asyncio.run(run())
    trusted, stranger, lifespan = seen
    assert trusted["client"] == ("203.0.113.9", 0) and trusted["scheme"] == "https"
    assert trusted["hubbub.peer"] == "127.0.0.1"
    assert stranger["client"] == ("192.0.2.1", 5000) and stranger["scheme"] == "http"
    assert "hubbub.peer" not in lifespan
