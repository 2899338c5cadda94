"""The cluster's event log: per-user logs in Redis, shared by every node, with a bus that recovers.

Data flow: `append` runs one Lua script that, atomically and idempotently by event id, gives
each recipient the next position of its log (a stream whose ids are `<pos>-0`), trims by the
retention rule, numbers the append with a global sequence, keeps it in a short `feed` stream and
PUBLISHes it. Every node's listener hears the notification, checks that the global sequence has
no gap (a gap, or a reconnect, is filled from the feed) and calls the subscribers (the hub) for
each recipient in order. If the feed no longer covers a gap, or the epoch changed because Redis
lost its data, the listener tells `on_reset` callbacks: local connections must then be closed so
their clients resume (or, after an epoch change, get a new connection id). See
docs/design/redis-backends.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hubbub.cluster import redis_scripts
from hubbub.cluster.eventlog import (
    BusStatus,
    Delivery,
    EventLog,
    EventMeta,
    LogEntry,
    ReadResult,
    ResetCallback,
    Subscriber,
)
from hubbub.ids import new_id
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")

FEED_PAGE = 500
RETRY_DEDUPE_SECONDS = 60  # appends without an event id: long enough for client retries


# Commands fail over fast instead of stalling: a pooled connection that died with the old
# server (a restart, a failover) fails at once and the command is retried on a new connection
# after a short, bounded backoff (20, 40, 80 ms; redis-py applies the same policy to connecting,
# so a command gives up after well under a second while Redis is unreachable); a half-open
# connection times out after SOCKET_TIMEOUT. Every command the backends send is safe to repeat:
# appends are idempotent by event id (a seen-key in the same script), the other scripts set
# state rather than add to it.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
HEALTH_CHECK_SECONDS = 10


def _retry() -> Retry:
    return Retry(
        ExponentialBackoff(cap=0.1, base=0.01),
        3,
        supported_errors=(RedisConnectionError, RedisTimeoutError),
    )


def _connection_options() -> dict[str, Any]:
    return {
        "retry": _retry(),
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }


def redis_client(url: str, *, max_connections: int = 64, wait_seconds: float = 5.0) -> Redis:
    """A client for the backends: bytes replies, and a pool that waits for a free connection
    (redis-py's default pool raises "Too many connections" under a burst of appends)."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds, **_connection_options()
    )
    return Redis.from_pool(pool)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection, like `redis_client`'s."""


class SentinelMaster(Redis):
    """The master's client; closing it closes the connections to the sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def parse_sentinels(spec: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (spaces allowed) as (host, port) pairs; port 26379 by default."""
    found = []
    for item in spec.replace(" ", ",").split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        if not host or not port.isdigit():
            raise ValueError(f"not a host:port sentinel address: {item!r}")
        found.append((host, int(port)))
    if not found:
        raise ValueError("no sentinel address given")
    return found


def sentinel_client(
    sentinels: list[tuple[str, int]],
    master_name: str,
    *,
    password: str = "",
    db: int = 0,
    max_connections: int = 64,
    wait_seconds: float = 5.0,
) -> Redis:
    """A client for the master that the sentinels name: every new connection asks them where
    the master is, so after a failover the pool's connections (which fail with the old
    master, or are refused by it once it is a replica) reconnect to the new one."""
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs={"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
    )
    return sentinel.master_for(
        master_name,
        redis_class=SentinelMaster,
        connection_pool_class=BlockingSentinelPool,
        max_connections=max_connections,
        timeout=wait_seconds,
        password=password or None,
        db=max(db, 0),
        check_connection=False,
        **_connection_options(),
    )


class BusStalled(RedisError):
    """The subscriber connection stopped answering probes."""


class _Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.epoch = f"{prefix}epoch"
        self.seq = f"{prefix}seq"
        self.feed = f"{prefix}feed"
        self.channel = f"{prefix}events"

    def seen(self, event_id: str) -> str:
        return f"{self.prefix}seen:{event_id}"

    def head(self, user_id: str) -> str:
        return f"{self.prefix}head:{user_id}"

    def log(self, user_id: str) -> str:
        return f"{self.prefix}log:{user_id}"

    def chanseq(self, channel_id: str) -> str:
        """The newest channel sequence appended (shared with `RedisChannelOrder`)."""
        return f"{self.prefix}chanseq:{channel_id}"


def encode_meta(meta: EventMeta) -> bytes:
    return orjson.dumps(
        [meta.event, int(meta.ephemeral), meta.connection_id, meta.omit_connection_id]
    )


@lru_cache(maxsize=1024)
def decode_meta(raw: bytes) -> EventMeta:
    event, ephemeral, connection_id, omit = orjson.loads(raw)
    return EventMeta(str(event), bool(ephemeral), str(connection_id), str(omit))


def _meta_from_list(value: list[Any]) -> EventMeta:
    return decode_meta(orjson.dumps(value))


def _pos(stream_id: bytes) -> int:
    return int(stream_id.split(b"-", 1)[0])


class RedisEventLog(EventLog):
    """Per-user logs in Redis; `start()` subscribes this node to every append."""

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        *,
        min_events: int = 1000,
        min_age_seconds: float = 600,
        max_events: int = 20_000,
        prefix: str = "hubbub:",
        dedupe_seconds: float = 600,
        idle_seconds: float = 7 * 86400,
        feed_length: int = 50_000,
        probe_interval: float = 1.0,
        stall_timeout: float = 5.0,
        start_timeout: float = 10.0,
        chanseq_ttl_seconds: float = 86400.0,
    ) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisEventLog needs a client with decode_responses=False")
        if idle_seconds and idle_seconds < min_age_seconds:
            raise ValueError("idle_seconds must be 0 or at least min_age_seconds")
        self.redis = redis
        self.node_id = node_id
        self.min_events = min_events
        self.min_age = min_age_seconds
        self.max_events = max(max_events, min_events)
        self.dedupe_seconds = dedupe_seconds
        self.idle_seconds = idle_seconds
        self.feed_length = feed_length
        self.probe_interval = probe_interval
        self.stall_timeout = stall_timeout
        self.start_timeout = start_timeout
        self.chanseq_ttl = chanseq_ttl_seconds
        self.keys = _Keys(prefix)
        self._append = redis.register_script(redis_scripts.APPEND)
        self._read = redis.register_script(redis_scripts.READ)
        self._swap_epoch = redis.register_script(redis_scripts.SWAP_EPOCH)
        self._replid = ""  # the replication id of the server the listener last subscribed to
        self._epoch: str | None = None
        self._subscribers: list[Subscriber] = []
        self._reset_callbacks: list[ResetCallback] = []
        # The listener's position: the epoch and global sequence it has delivered up to.
        self._bus_epoch: str | None = None
        self._bus_seq = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = asyncio.Event()
        self._subscribed = False
        self._probe_sent: float | None = None
        self._probe_token = ""
        self._last_probe = 0.0
        self._lag = 0.0
        self._reconnects = 0
        self._resets = 0
        self._last_error = ""

    # Epoch

    @property
    def epoch(self) -> str:
        if self._epoch is None:
            raise RuntimeError("RedisEventLog.epoch is unknown until start() has run")
        return self._epoch

    async def current_epoch(self) -> str:
        """Re-reads the epoch from Redis, creating a new one if Redis lost it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.epoch, new_id(), nx=True)
            pipe.get(self.keys.epoch)
            _, value = await pipe.execute()
        return self._adopt_epoch(value)

    def _adopt_epoch(self, value: bytes) -> str:
        epoch = value.decode()
        if self._epoch is not None and epoch != self._epoch:
            log.warning(
                "event log epoch changed: Redis lost its data; connections cannot resume",
                extra={"old_epoch": self._epoch, "new_epoch": epoch, "node": self.node_id},
            )
        self._epoch = epoch
        return epoch

    # Writing and reading

    async def append(
        self,
        user_ids: Iterable[str],
        payload: bytes,
        meta: EventMeta,
        *,
        event_id: str | None = None,
        channel: tuple[str, int] | None = None,
    ) -> None:
        users = list(user_ids)
        if not users:
            return
        channel_id, channel_seq = channel if channel is not None and channel[1] > 0 else ("", 0)
        # Without an id of the caller's, a fresh one still makes the client's own retries safe.
        dedupe = self.dedupe_seconds if event_id else RETRY_DEDUPE_SECONDS
        keys = [
            self.keys.epoch,
            self.keys.seq,
            self.keys.feed,
            self.keys.seen(event_id or new_id()),
            self.keys.chanseq(channel_id),
        ]
        for user_id in users:
            keys.append(self.keys.head(user_id))
            keys.append(self.keys.log(user_id))
        args: list[str | bytes | int] = [
            self.keys.channel,
            new_id(),
            int(dedupe * 1000),
            self.min_events,
            int(self.min_age * 1000),
            self.max_events,
            int(self.idle_seconds * 1000),
            self.feed_length,
            encode_meta(meta),
            payload,
            int(meta.xid),
            channel_seq,
            int(self.chanseq_ttl * 1000),
            *users,
        ]
        # One script call: a retry after a lost reply finds its seen-key and does nothing.
        _, epoch, late = await self._append(keys=keys, args=args)
        self._adopt_epoch(epoch)
        if late:
            # The outbox appends a channel's predecessors first, so this means an event of an
            # earlier incarnation of the log came back (connections skip it as stale).
            log.warning(
                "channel event appended after a later one of its channel (late)",
                extra={"channel_id": channel_id, "seq": channel_seq, "event_id": event_id},
            )

    async def head(self, user_id: str) -> int:
        value = await self.redis.get(self.keys.head(user_id))
        return int(value) if value is not None else 0

    async def read(
        self, user_id: str, after: int, limit: int = 1000, epoch: str | None = None
    ) -> ReadResult:
        head, first, raw, found_epoch = await self._read(
            keys=[self.keys.head(user_id), self.keys.log(user_id), self.keys.epoch],
            args=[max(after + 1, 0), limit + 1],
        )
        if epoch is not None and (found_epoch or b"").decode() != epoch:
            # Redis lost its data (or failed over) since `after` was a position.
            return ReadResult([], int(head), False, True)
        entries = [self._entry(user_id, stream_id, fields) for stream_id, fields in raw[:limit]]
        truncated = after < head if first == 0 else after + 1 < first
        return ReadResult(entries, int(head), len(raw) > limit, truncated)

    @staticmethod
    def _entry(user_id: str, stream_id: bytes, fields: list[bytes]) -> LogEntry:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        meta = decode_meta(values[b"m"])
        xid = values.get(b"x")
        if xid is not None or b"l" in values:
            meta = replace(meta, xid=int(xid or 0), late=b"l" in values)
        return LogEntry(user_id, _pos(stream_id), int(values[b"t"]) / 1000, values[b"p"], meta)

    # Subscribing

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def on_reset(self, callback: ResetCallback) -> None:
        """`callback(reason)` runs when live delivery lost continuity: "epoch" or "gap"."""
        self._reset_callbacks.append(callback)

    async def start(self) -> None:
        """Loads the epoch and subscribes; returns once appends from now on will be heard."""
        await self.current_epoch()
        if self._task is not None:
            return
        self._ready.clear()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._listen())
        try:
            await asyncio.wait_for(self._ready.wait(), self.start_timeout)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"event log bus not subscribed after {self.start_timeout}s: {self._last_error}"
            ) from None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            await stop_task(task)

    def problems(self) -> list[str]:
        status = self.bus_status()
        if status.healthy:
            return []
        return [f"event bus unhealthy: {status.last_error or 'no answer from Redis'}"]

    def available(self) -> bool:
        return self._subscribed

    def bus_status(self) -> BusStatus:
        running = self._task is not None and not self._task.done()
        now = time.monotonic()
        lag = self._lag
        if self._probe_sent is not None:
            lag = max(lag, now - self._probe_sent)
        healthy = running and self._subscribed and lag < self.stall_timeout
        return BusStatus(running, healthy, lag, self._reconnects, self._resets, self._last_error)

    # The listener

    def _bus_client(self) -> Redis:
        """A client of its own whose connection errors surface at once instead of being retried
        (a silent reconnect would hide messages missed in between)."""
        pool = self.redis.connection_pool
        kwargs = {
            **pool.connection_kwargs,
            "retry": Retry(NoBackoff(), 0),
            "socket_timeout": None,  # the probe finds a half-open connection
            "health_check_interval": 0,  # the probe is the health check
        }
        return Redis.from_pool(ConnectionPool(connection_class=pool.connection_class, **kwargs))

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._stopping:
            client = self._bus_client()
            pubsub: PubSub | None = None
            try:
                if self._bus_epoch is None:
                    await self._baseline()
                pubsub = client.pubsub()
                await pubsub.subscribe(self.keys.channel)
                await self._confirm_subscribed(pubsub)
                await self._resync(client)
                self._subscribed = True
                self._ready.set()
                backoff = 0.05
                await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                self._reconnects += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("event log bus disconnected: %s", self._last_error)
            except Exception as exc:
                # Not a connection problem (a malformed message?): start over rather than die.
                self._reconnects += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("event log bus failed")
            finally:
                self._subscribed = False
                self._probe_sent = None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.25)

    async def _baseline(self) -> None:
        """Before the first subscribe: appends up to now are not ours to deliver."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.epoch, new_id(), nx=True)
            pipe.get(self.keys.epoch)
            pipe.get(self.keys.seq)
            _, epoch, seq = await pipe.execute()
        self._bus_epoch = self._adopt_epoch(epoch)
        self._bus_seq = int(seq or 0)

    async def _confirm_subscribed(self, pubsub: PubSub) -> None:
        deadline = time.monotonic() + self.stall_timeout
        while time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=deadline - time.monotonic())
            if message is not None and message["type"] == "subscribe":
                return
        raise BusStalled("no subscribe confirmation")

    async def _resync(self, client: Redis) -> None:
        """After (re)subscribing: deliver whatever the feed holds that we have not heard.

        If the server is another one than before with the same data (a replica promoted by
        Sentinel), the newest appends the old master acknowledged may be missing on it
        (replication is asynchronous), and nobody can tell which: the epoch is replaced, so
        that every client starts over with a fresh hello and refetches (never a silent gap).
        """
        replid = await self._replication_id(client)
        moved = self._replid and replid != self._replid and self._bus_epoch is not None
        if moved and await self._replace_epoch(str(self._bus_epoch)):
            log.warning(
                "Redis master changed (failover): replacing the event log epoch",
                extra={"node": self.node_id},
            )
        self._replid = replid
        epoch = await self.current_epoch()
        if epoch != self._bus_epoch:
            await self._reset("epoch")
            self._bus_epoch = epoch
            self._bus_seq = 0
        await self._recover(upto=None)

    @staticmethod
    async def _replication_id(client: Redis) -> str:
        """The server's replication id: a restart or a promotion gives a new one."""
        info = await client.info("replication")
        return str(info.get("master_replid", ""))

    async def _replace_epoch(self, old: str) -> bool:
        """Sets a new epoch unless another node already did (or Redis lost it anyway)."""
        replaced = await self._swap_epoch(keys=[self.keys.epoch], args=[old, new_id()])
        return bool(replaced)

    async def _recover(self, upto: int | None) -> None:
        end = "+" if upto is None else f"{upto}-0"
        while upto is None or self._bus_seq < upto:
            start = self._bus_seq + 1
            batch: list[tuple[bytes, dict[bytes, bytes]]] = await self.redis.xrange(
                self.keys.feed, f"{start}-0", end, count=FEED_PAGE
            )  # type: ignore[assignment]
            if batch and _pos(batch[0][0]) > start:
                log.error("event log bus missed appends no longer in the feed; resetting")
                await self._reset("gap")
            for stream_id, fields in batch:
                await self._deliver_message(_pos(stream_id), fields[b"d"])
            if len(batch) < FEED_PAGE:
                if upto is not None and self._bus_seq < upto:
                    # Trimmed away entirely: nothing left to deliver below `upto`.
                    await self._reset("gap")
                    self._bus_seq = upto
                return

    async def _pump(self, pubsub: PubSub) -> None:
        while not self._stopping:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=self._wait_time()
            )
            if message is not None:
                if message["type"] == "pong":
                    self._on_pong(message["data"])
                elif message["type"] == "message":
                    await self._on_message(message["data"])
            await self._probe(pubsub)

    def _wait_time(self) -> float:
        now = time.monotonic()
        if self._probe_sent is not None:
            return max(0.01, self._probe_sent + self.stall_timeout - now)
        return max(0.01, self._last_probe + self.probe_interval - now)

    async def _probe(self, pubsub: PubSub) -> None:
        now = time.monotonic()
        if self._probe_sent is not None:
            if now - self._probe_sent > self.stall_timeout:
                raise BusStalled(f"no probe answer for {now - self._probe_sent:.1f}s")
            return
        if now - self._last_probe >= self.probe_interval:
            self._probe_token = new_id()
            self._probe_sent = now
            await pubsub.ping(self._probe_token)

    def _on_pong(self, data: bytes) -> None:
        if self._probe_sent is not None and data.decode() == self._probe_token:
            now = time.monotonic()
            self._lag = now - self._probe_sent
            self._last_probe = now
            self._probe_sent = None

    async def _on_message(self, data: bytes) -> None:
        header, _, _ = data.partition(b"\n")
        meta = orjson.loads(header)
        epoch, seq = meta["e"], int(meta["g"])
        if epoch != self._bus_epoch:
            # Redis lost its data (or was flushed) while this subscription stayed up.
            if epoch != await self.current_epoch():
                return  # a leftover from an incarnation that is already gone
            await self._reset("epoch")
            self._bus_epoch = epoch
            self._bus_seq = 0
        if seq <= self._bus_seq:
            return  # already delivered from the feed
        if seq > self._bus_seq + 1:
            await self._recover(upto=seq - 1)
        await self._deliver_message(seq, data)

    async def _deliver_message(self, seq: int, data: bytes) -> None:
        if seq <= self._bus_seq:
            return
        self._bus_seq = seq
        raw_header, _, payload = data.partition(b"\n")
        header = orjson.loads(raw_header)
        created = int(header["t"]) / 1000
        meta = _meta_from_list(header["m"])
        if "x" in header or "l" in header:
            meta = replace(meta, xid=int(header.get("x", 0)), late=bool(header.get("l")))
        recipients = header["r"]
        delivery = Delivery(
            payload,
            meta,
            created,
            [user_id for user_id, _ in recipients],
            [int(pos) for _, pos in recipients],
        )
        for subscriber in self._subscribers:
            try:
                result = subscriber(delivery)
                if result is not None:
                    await result
            except Exception:
                log.exception("event log subscriber failed", extra={"event": meta.event})

    async def _reset(self, reason: str) -> None:
        self._resets += 1
        for callback in self._reset_callbacks:
            try:
                result = callback(reason)
                if result is not None:
                    await result
            except Exception:
                log.exception("event log reset callback failed", extra={"reason": reason})
