"""API rate limiting (`RateLimitSettings`): GCRA buckets, in memory or shared through Redis.

The algorithm is GCRA, the one Mattermost uses (through the `throttled` library), so its
settings mean the same: a bucket holds `MaxBurst + 1` requests and refills at `PerSec`. A
bucket's whole state is one number, its theoretical arrival time (TAT): the time at which it
would be full again. A request is allowed when, after adding one emission interval
(`1 / PerSec`) to the TAT, the TAT is no further ahead of now than the burst tolerance
(`(MaxBurst + 1)` intervals). Times are integer microseconds so both stores compute alike.

Where Mattermost keeps buckets in each node's memory (three nodes: three times the limit),
hubbub keeps them in Redis when `CacheSettings.CacheType` is `redis`: one Lua script reads the
TAT, decides and writes it atomically, with Redis's own clock, so every node shares one limit
whatever their clocks say. Without Redis, or while Redis does not answer, each node uses a
bounded LRU of `MemoryStoreSize` buckets: a Redis outage never blocks anyone (it is logged
once per minute and counted in `hubbub_ratelimit_store_errors_total`).

Keys (docs/operations.md, "Rate limiting"): an authenticated request is limited by its user,
so fifty people behind one office NAT or proxy each have their own bucket; an anonymous one by
the client address (`VaryByRemoteAddr`, resolved by `hubbub.api.forwarded`); `VaryByHeader`
appends that header's value. The websocket and the health check (`/api/v4/system/ping`) are
never limited, nor is anything outside `/api/v4` (the web client's files).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hubbub.api.errors import render_error, send_error
from hubbub.config.settings import RateLimitConfig
from hubbub.errors import AppError
from hubbub.observability.metrics import Metrics
from hubbub.services.session import Session

log = logging.getLogger("hubbub.ratelimit")

MICROS = 1_000_000
EXEMPT_PATHS = frozenset(
    {"/api/v4/system/ping", "/api/v4/websocket", "/api/v4/websocket/", "/api/v4/users/websocket"}
)
REDIS_TIMEOUT = 0.5  # seconds one Redis decision may take before the node decides alone
REDIS_RETRY = 1.0  # seconds the memory buckets stand in after a Redis failure
ERROR_LOG_EVERY = 60.0  # seconds between two log lines about a failing Redis


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until a request would be allowed (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(math.ceil(self.reset_after)).encode()),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(max(1, math.ceil(self.retry_after))).encode()))
        return out


class GCRA:
    """The bucket math, with no clock and no store: `decide(tat, now)`."""

    def __init__(self, per_sec: int, max_burst: int) -> None:
        self.limit = max_burst + 1
        self.interval = MICROS // per_sec  # microseconds per request
        self.tolerance = self.interval * self.limit

    def decide(self, tat: int | None, now: int) -> tuple[Decision, int | None]:
        """The decision for one request at `now` on a bucket whose TAT is `tat` (None: a
        fresh bucket), and the TAT to store (None: unchanged)."""
        base = now if tat is None or tat < now else tat
        new_tat = base + self.interval
        allow_at = new_tat - self.tolerance
        if now < allow_at:
            return self.result(False, base - now, allow_at - now), None
        return self.result(True, new_tat - now, 0), new_tat

    def result(self, allowed: bool, ttl: int, retry: int) -> Decision:
        """Turns a stored-ahead time (`ttl`, microseconds) into the headers' numbers."""
        room = self.tolerance - ttl
        remaining = max(0, room // self.interval) if room > -self.interval else 0
        return Decision(allowed, self.limit, int(remaining), ttl / MICROS, retry / MICROS)


class MemoryBuckets:
    """One node's buckets: the newest `size` keys, least recently used dropped first."""

    def __init__(self, gcra: GCRA, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.gcra = gcra
        self.size = size
        self.clock = clock
        self.tats: OrderedDict[str, int] = OrderedDict()

    def take(self, key: str) -> Decision:
        now = round(self.clock() * MICROS)
        decision, new_tat = self.gcra.decide(self.tats.get(key), now)
        if new_tat is not None:
            self.tats[key] = new_tat
            self.tats.move_to_end(key)
            while len(self.tats) > self.size:
                self.tats.popitem(last=False)
        return decision


# KEYS[1]: the bucket. ARGV: emission interval, tolerance (microseconds). Redis's clock, so the
# nodes' clocks do not matter. Returns {allowed, ttl, retry} in microseconds.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 1000)
return {1, new_tat - now, 0}
"""


class RedisBuckets:
    """The buckets every node shares, one Redis key each, decided by `GCRA_SCRIPT`."""

    def __init__(self, redis: Any, gcra: GCRA, prefix: str) -> None:
        self.gcra = gcra
        self.prefix = prefix
        self.script = redis.register_script(GCRA_SCRIPT)

    async def take(self, key: str) -> Decision:
        allowed, ttl, retry = await self.script(
            keys=[self.prefix + key], args=[self.gcra.interval, self.gcra.tolerance]
        )
        return self.gcra.result(bool(int(allowed)), int(ttl), int(retry))


class RateLimiter:
    """Decides for a key: in Redis when there is one and it answers, else in memory."""

    def __init__(
        self,
        settings: RateLimitConfig,
        metrics: Metrics,
        *,
        redis: Any = None,
        prefix: str = "hubbub:ratelimit:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gcra = GCRA(settings.PerSec, settings.MaxBurst)
        self.memory = MemoryBuckets(self.gcra, settings.MemoryStoreSize, clock)
        self.shared = RedisBuckets(redis, self.gcra, prefix) if redis is not None else None
        self.metrics = metrics
        self.clock = clock
        self._redis_down_until = 0.0
        self._last_error_log = -math.inf

    async def take(self, key: str) -> Decision:
        if self.shared is None or self.clock() < self._redis_down_until:
            return self.memory.take(key)
        try:
            return await asyncio.wait_for(self.shared.take(key), REDIS_TIMEOUT)
        except Exception as exc:  # any Redis failure: decide here, never block everyone
            self._redis_failed(exc)
            return self.memory.take(key)

    def _redis_failed(self, exc: Exception) -> None:
        now = self.clock()
        self._redis_down_until = now + REDIS_RETRY
        self.metrics.ratelimit_store_errors.inc()
        if now - self._last_error_log >= ERROR_LOG_EVERY:
            self._last_error_log = now
            log.warning(
                "rate limiting in this node's memory: Redis did not answer",
                extra={"error": f"{type(exc).__name__}: {exc}", "retry_seconds": REDIS_RETRY},
            )


def rate_limit_key(
    settings: RateLimitConfig, session: Session | None, address: str, header_value: str
) -> str:
    """Whose bucket a request takes from (docs/operations.md, "Rate limiting")."""
    if session is not None:
        key = "user:" + session.user_id
    elif settings.VaryByRemoteAddr:
        key = "addr:" + address
    else:
        key = "all"
    if settings.VaryByHeader:
        key += "|h:" + header_value.lower()
    if len(key) > 120:  # a long header value: keep the Redis key short
        key = "sha:" + hashlib.sha256(key.encode()).hexdigest()
    return key


class RateLimited(AppError):
    def __init__(self) -> None:
        # Mattermost answers a plain-text "limit exceeded"; hubbub the same words in an AppError.
        super().__init__(
            "api.context.rate_limit_exceeded.app_error",
            "limit exceeded",
            429,
            detailed_error="Too many requests: wait for Retry-After seconds.",
        )


class RateLimitMiddleware:
    """Inside `APIMiddleware` (which resolved the session and the request id): 429 with the
    limit headers, or the request with the same headers on its answer."""

    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, settings: RateLimitConfig, developer: bool
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.settings = settings
        self.developer = developer
        self.header = settings.VaryByHeader.lower().encode("latin-1")

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in EXEMPT_PATHS or not path.startswith("/api/v4/"):
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        header_value = ""
        if self.header:
            for name, value in scope.get("headers", []):
                if name.lower() == self.header:
                    header_value = value.decode("latin-1")
                    break
        key = rate_limit_key(
            self.settings, scope.get("hubbub.session"), client[0] if client else "", header_value
        )
        decision = await self.limiter.take(key)
        extra = decision.headers()
        if not decision.allowed:
            self.limiter.metrics.rate_limited.inc()
            rendered = render_error(RateLimited(), scope, self.developer)
            await send_error(send, rendered, extra)
            return

        async def send_with_limits(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)
