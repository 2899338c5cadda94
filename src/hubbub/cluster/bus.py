"""The cluster bus: small control messages every node hears (including the sender).

Used for cache invalidation that must reach every node (a revoked session, a user's changed
roles) and for taking over a websocket connection held by another node. Events for clients do not
travel here; they go through the event log.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ClusterBus(abc.ABC):
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        for handler in self._handlers.get(str(message.get("type")), []):
            try:
                await handler(message)
            except Exception:
                log.exception("cluster bus handler failed", extra={"type": message.get("type")})

    @abc.abstractmethod
    async def publish(self, kind: str, **fields: Any) -> None: ...

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class MemoryBus(ClusterBus):
    """One node: messages go straight to the local handlers."""

    async def publish(self, kind: str, **fields: Any) -> None:
        await self._dispatch({"type": kind, **fields})


class RedisBus(ClusterBus):
    """Redis pub/sub on one channel; reconnects by itself after Redis restarts."""

    def __init__(self, redis: Any, channel: str, node_id: str) -> None:
        super().__init__()
        self.redis = redis
        self.channel = channel
        self.node_id = node_id
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def publish(self, kind: str, **fields: Any) -> None:
        message = {"type": kind, "from": self.node_id, **fields}
        try:
            await self.redis.publish(self.channel, orjson.dumps(message))
        except Exception:
            # Still act locally: this node's own caches and sockets must follow at once.
            log.warning("cluster bus publish failed", extra={"type": kind}, exc_info=True)
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
                    try:
                        message = orjson.loads(item["data"])
                    except orjson.JSONDecodeError:
                        continue
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
