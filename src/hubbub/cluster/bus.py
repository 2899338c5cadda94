"""The cluster bus: small typed control messages every node hears (including the sender).

Used for cache invalidation that must reach every node (a revoked session, a user's changed
roles) and for taking over a websocket connection held by another node. Events for clients do not
travel here; they go through the event log.

A message is a frozen dataclass deriving from `BusMessage` with a `kind` (its name on the wire),
declared by the module that owns it (`services/auth.py` declares the session ones,
`realtime/hub.py` the takeover); declaring it registers the kind. Components subscribe to a type in
their constructor. On the wire a message is a JSON object of its fields plus `type` (the kind) and
`from` (the sending node); an unknown kind (a newer node during a rolling upgrade) or fields that do
not fit the type are logged and dropped, never raised into the listener.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import orjson

from hubbub.cluster.metrics import ClusterMetrics
from hubbub.lifecycle import Component
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")

M = TypeVar("M", bound="BusMessage")
Handler = Callable[[Any], Awaitable[None]]

MESSAGE_KINDS: dict[str, type[BusMessage]] = {}


class BusMessage:
    """Base of every cluster message: `class Revoked(BusMessage, kind="sessions_revoked")`."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not kind:
            raise TypeError(f"{cls.__name__}: a bus message needs a kind")
        if kind in MESSAGE_KINDS and MESSAGE_KINDS[kind].__qualname__ != cls.__qualname__:
            raise TypeError(f"bus message kind {kind!r} is already {MESSAGE_KINDS[kind]!r}")
        cls.kind = kind
        MESSAGE_KINDS[kind] = cls

    def encode(self, sender: str) -> bytes:
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        return orjson.dumps({**fields, "type": self.kind, "from": sender})


def decode_message(data: bytes | str) -> BusMessage | None:
    """The typed message in `data`, or None (logged) when it is not one this node knows."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        log.warning("malformed cluster bus message dropped", extra={"error": str(exc)})
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        log.warning("cluster bus message without a kind dropped")
        return None
    kind = raw.pop("type")
    raw.pop("from", None)
    cls = MESSAGE_KINDS.get(kind)
    if cls is None:
        log.warning("cluster bus message of an unknown kind dropped", extra={"kind": kind})
        return None
    try:
        return cls(**raw)
    except TypeError as exc:
        log.warning(
            "cluster bus message that does not fit its kind dropped",
            extra={"kind": kind, "error": str(exc)},
        )
        return None


class ClusterBus(Component, abc.ABC):
    def __init__(self, node_id: str = "", metrics: ClusterMetrics | None = None) -> None:
        self.node_id = node_id
        self.metrics = metrics or ClusterMetrics()
        self._handlers: dict[type[BusMessage], list[Handler]] = {}

    def subscribe(self, message_type: type[M], handler: Callable[[M], Awaitable[None]]) -> None:
        """Calls `handler` with every message of `message_type`, from any node, this one too."""
        self._handlers.setdefault(message_type, []).append(handler)

    async def _dispatch(self, message: BusMessage) -> None:
        self.metrics.received.labels(message.kind).inc()
        for handler in self._handlers.get(type(message), []):
            try:
                await handler(message)
            except Exception:
                log.exception("cluster bus handler failed", extra={"kind": message.kind})

    @abc.abstractmethod
    async def publish(self, message: BusMessage) -> None: ...


class MemoryBus(ClusterBus):
    """One node: messages go straight to the local handlers."""

    async def publish(self, message: BusMessage) -> None:
        self.metrics.requests.inc()
        self.metrics.sent.labels(message.kind).inc()
        # Through the wire format, so a message that could not cross Redis fails here too.
        decoded = decode_message(message.encode(self.node_id))
        if decoded is not None:
            await self._dispatch(decoded)


class RedisBus(ClusterBus):
    """Redis pub/sub on one channel; reconnects by itself after Redis restarts."""

    def __init__(
        self, redis: Any, channel: str, node_id: str, metrics: ClusterMetrics | None = None
    ) -> None:
        super().__init__(node_id, metrics)
        self.redis = redis
        self.channel = channel
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def publish(self, message: BusMessage) -> None:
        data = message.encode(self.node_id)
        self.metrics.requests.inc()
        self.metrics.sent.labels(message.kind).inc()
        started = time.perf_counter()
        try:
            await self.redis.publish(self.channel, data)
            self.metrics.request_duration.observe(time.perf_counter() - started)
        except Exception:
            # Still act locally: this node's own caches and sockets must follow at once.
            log.warning("cluster bus publish failed", extra={"kind": message.kind}, exc_info=True)
            await self._dispatch(message)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                async for item in pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    message = decode_message(item["data"])
                    if message is not None:
                        await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.connected.clear()
                log.warning("cluster bus disconnected; retrying", exc_info=True)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
