"""Read-your-writes across replicas and nodes.

The API middleware opens a `ReadContext` for the user whose request it is (`reading_as`). When a
write of that request commits, `Database.write` reads the primary's WAL insert position
(`pg_current_wal_insert_lsn()`, after the commit, so it is past the commit record) and records it
per user in a `PositionStore` shared by every node (Redis in a cluster, memory on one node). A
read of that user goes to a replica only when the replica has replayed past the user's position
(`pg_last_wal_replay_lsn()`), otherwise to the primary. So whichever node serves the user's next
request, the user never reads a state older than what they wrote.

A fresh websocket `hello` records the primary's position for its user too (`note_hello`): the
REST refetch the client makes after it sees everything committed before the hello, as delivery
invariant 9 asks. An anonymous request (sign-up, login) reads from the primary; when it turns out
to be a login, the middleware hands what it wrote to the user who logged in (`identify`), so a
user created and logged in on one node is found by the next request on any other.

Positions expire after `SqlSettings.ReadYourWritesSeconds`; by then a replica still behind has
long been taken out of rotation by its lag (`store/monitor.py`). Reads outside a request
(background work, websocket event handling, after-commit callbacks) are not routed: they use the
primary, where membership and sequences must be current.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hubbub.store")


@dataclass
class ReadContext:
    """The reader of one request: its user, and the WAL position its reads must have seen
    (loaded lazily from the shared store, raised by the request's own writes)."""

    user_id: str  # "" for an anonymous request (sign-up, login)
    positions: PositionStore | None = None
    _min_lsn: int | None = None
    pinned: bool = False  # every read on the primary (anonymous requests)
    written: int = 0  # the position of this request's last write
    routed: dict[str, int] = field(default_factory=dict)  # role -> reads, for tests and logs

    async def min_lsn(self) -> int:
        if self._min_lsn is None:
            self._min_lsn = 0
            if self.positions is not None:
                try:
                    self._min_lsn = await self.positions.get(self.user_id)
                except Exception as exc:
                    # Without the shared position the freshness of a replica is unknown.
                    log.warning("read-your-writes position unavailable", extra={"error": str(exc)})
                    self._min_lsn = -1
        return self._min_lsn

    def wrote(self, lsn: int) -> None:
        self.written = max(self.written, lsn)
        if self._min_lsn is None or self._min_lsn >= 0:
            self._min_lsn = max(self._min_lsn or 0, lsn)

    async def identify(self, user_id: str) -> None:
        """An anonymous request turned out to be `user_id`'s (a login): what it wrote is that
        user's, so the user's next request, on any node, reads it."""
        self.user_id = user_id
        if self.written and self.positions is not None:
            try:
                await self.positions.record(user_id, self.written)
            except Exception as exc:
                log.warning("read-your-writes position not shared", extra={"error": str(exc)})


_current: contextvars.ContextVar[ReadContext | None] = contextvars.ContextVar(
    "hubbub_reading_as", default=None
)


def current_reader() -> ReadContext | None:
    return _current.get()


@contextlib.contextmanager
def reading_as(
    user_id: str, positions: PositionStore | None, *, pinned: bool = False
) -> Iterator[ReadContext]:
    """Marks the reads and writes of the enclosed work as `user_id`'s (`pinned`: its reads
    use the primary; an anonymous request's are, since it cannot know what is fresh enough)."""
    ctx = ReadContext(user_id, positions, pinned=pinned)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextlib.contextmanager
def pinned_to_primary() -> Iterator[None]:
    """Reads in the enclosed work use the primary (after-commit callbacks, which publish)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


class PositionStore(abc.ABC):
    """The last write position per user, shared by every node; `get` is 0 when none is known."""

    @abc.abstractmethod
    async def record(self, user_id: str, lsn: int) -> None: ...

    @abc.abstractmethod
    async def get(self, user_id: str) -> int: ...


class MemoryPositions(PositionStore):
    def __init__(self, ttl_seconds: float, clock: Any = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock
        self._positions: dict[str, tuple[int, float]] = {}

    async def record(self, user_id: str, lsn: int) -> None:
        now = self.clock()
        old = self._positions.get(user_id)
        if old is not None and old[1] > now and old[0] > lsn:
            lsn = old[0]
        self._positions[user_id] = (lsn, now + self.ttl)
        if len(self._positions) > 10_000:
            self._positions = {k: v for k, v in self._positions.items() if v[1] > now}

    async def get(self, user_id: str) -> int:
        found = self._positions.get(user_id)
        if found is None or found[1] <= self.clock():
            return 0
        return found[0]


# Keeps the larger position: two nodes writing for one user at once must not lower it.
# Positions are compared as fixed-width hex strings (Lua numbers lose precision past 2^53).
_RECORD_MAX = """
local old = redis.call('GET', KEYS[1])
if (not old) or old < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class RedisPositions(PositionStore):
    def __init__(self, redis: Any, prefix: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._record = redis.register_script(_RECORD_MAX)

    async def record(self, user_id: str, lsn: int) -> None:
        await self._record(keys=[self.prefix + user_id], args=[f"{lsn:016x}", self.ttl_ms])

    async def get(self, user_id: str) -> int:
        value = await self.redis.get(self.prefix + user_id)
        if not value:
            return 0
        return int(value.decode() if isinstance(value, bytes) else value, 16)

    async def close(self) -> None:
        await self.redis.aclose()
