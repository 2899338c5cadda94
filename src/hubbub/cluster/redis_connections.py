"""Connection resume records and presence in Redis, so any node can resume any connection.

A record is a hash that expires `retention` after it was detached (or after its node stopped
refreshing it). Presence is exact across nodes: each live connection has an entry in its user's
`live:<user>` hash with an expiry that its node refreshes every `heartbeat_seconds`, and a
sorted set scores each user by the newest such expiry. When a node dies its entries simply run
out (after about three heartbeats), and its records stay resumable for the retention window.

A record belongs to the node instance that opened it last: when a client resumes on another
node, the old node's late `detach` or heartbeat no longer touches it.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hubbub.cluster import redis_scripts
from hubbub.cluster.connections import (
    MAX_CHECKPOINTS,
    Checkpoint,
    ConnectionRecord,
    ConnectionRegistry,
)
from hubbub.ids import new_id
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.cluster")

HEARTBEAT_BATCH = 256


def encode_checkpoints(checkpoints: list[Checkpoint]) -> str:
    return ";".join(f"{cp.seq}:{cp.pos}" for cp in list(checkpoints)[-MAX_CHECKPOINTS:])


def decode_checkpoints(raw: str) -> list[Checkpoint]:
    out: list[Checkpoint] = []
    for item in raw.split(";") if raw else ():
        seq, _, pos = item.partition(":")
        out.append(Checkpoint(int(seq), int(pos)))
    return out[-MAX_CHECKPOINTS:]


class RedisConnectionRegistry(ConnectionRegistry):
    def __init__(
        self,
        redis: Redis,
        node_id: str,
        *,
        retention_seconds: float = 600,
        heartbeat_seconds: float = 5.0,
        prefix: str = "hubbub:",
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        # The owner names this process, not just the node: a restarted node with the same id
        # must not adopt the records its previous life left behind.
        self.owner = f"{node_id}/{new_id()}"
        self.retention = retention_seconds
        self.heartbeat = heartbeat_seconds
        self.live_ttl = 3 * heartbeat_seconds
        self.prefix = prefix
        self._users_key = f"{prefix}presence"
        self._local: dict[str, str] = {}  # live connections of this node: id -> user
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._open = redis.register_script(redis_scripts.OPEN)
        self._checkpoint = redis.register_script(redis_scripts.CHECKPOINT)
        self._detach = redis.register_script(redis_scripts.DETACH)
        self._forget = redis.register_script(redis_scripts.FORGET)
        self._get = redis.register_script(redis_scripts.GET)
        self._live_count = redis.register_script(redis_scripts.LIVE_COUNT)
        self._connected = redis.register_script(redis_scripts.CONNECTED_USERS)
        self._heartbeat = redis.register_script(redis_scripts.HEARTBEAT)

    def _record_key(self, connection_id: str) -> str:
        return f"{self.prefix}conn:{connection_id}"

    def _live_key(self, user_id: str) -> str:
        return f"{self.prefix}live:{user_id}"

    def _ms(self, seconds: float) -> int:
        return max(1, int(seconds * 1000))

    # Lifecycle

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._heartbeat_loop())

    async def stop(self) -> None:
        """Stops refreshing; live entries then run out as if this node had died."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            await stop_task(task)

    async def _heartbeat_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                log.warning("connection heartbeat failed: %s", exc)

    async def refresh(self) -> None:
        """Extends this node's live entries (the heartbeat does this every few seconds)."""
        items = list(self._local.items())
        for i in range(0, len(items), HEARTBEAT_BATCH):
            batch = items[i : i + HEARTBEAT_BATCH]
            keys = [self._users_key]
            args: list[str | int] = [self.owner, self._ms(self.live_ttl), self._ms(self.retention)]
            for cid, user in batch:
                keys += [self._record_key(cid), self._live_key(user)]
                args += [cid, user]
            lost = await self._heartbeat(keys=keys, args=args)
            for cid in lost:
                # Resumed on another node: that node refreshes it now.
                self._local.pop(cid.decode(), None)

    # ConnectionRegistry

    async def open(self, record: ConnectionRecord) -> None:
        now_ms = await self._open(
            keys=[
                self._record_key(record.connection_id),
                self._live_key(record.user_id),
                self._users_key,
            ],
            args=[
                record.connection_id,
                record.user_id,
                record.epoch,
                self.owner,
                self.node_id,
                encode_checkpoints(record.checkpoints),
                self._ms(self.retention),
                self._ms(self.live_ttl),
                record.snapshot,
            ],
        )
        record.live = True
        record.updated = int(now_ms) / 1000
        self._local[record.connection_id] = record.user_id

    async def checkpoint(self, connection_id: str, cp: Checkpoint) -> None:
        await self._checkpoint(
            keys=[self._record_key(connection_id)],
            args=[
                f"{cp.seq}:{cp.pos}",
                MAX_CHECKPOINTS,
                self._ms(self.retention),
                self._ms(self.live_ttl),
                self.owner,
            ],
        )

    async def checkpoint_many(self, items: list[tuple[str, list[Checkpoint]]]) -> None:
        """One pipelined round trip for the checkpoints of many connections."""
        if not items:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for connection_id, checkpoints in items:
                if not checkpoints:
                    continue
                await self._checkpoint(
                    keys=[self._record_key(connection_id)],
                    args=[
                        ";".join(f"{cp.seq}:{cp.pos}" for cp in checkpoints),
                        MAX_CHECKPOINTS,
                        self._ms(self.retention),
                        self._ms(self.live_ttl),
                        self.owner,
                    ],
                    client=pipe,
                )
            await pipe.execute()

    async def _user_of(self, connection_id: str) -> str | None:
        user = self._local.get(connection_id)
        if user is not None:
            return user
        value = await self.redis.hget(self._record_key(connection_id), "u")
        return value.decode() if isinstance(value, bytes) else value

    async def detach(self, connection_id: str) -> None:
        user = await self._user_of(connection_id)
        self._local.pop(connection_id, None)
        if user is None:
            return
        await self._detach(
            keys=[self._record_key(connection_id), self._live_key(user), self._users_key],
            args=[connection_id, user, self.owner, self._ms(self.retention)],
        )

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        now_ms, flat = await self._get(keys=[self._record_key(connection_id)])
        if not flat:
            return None
        fields = {k.decode(): v.decode() for k, v in zip(flat[::2], flat[1::2], strict=True)}
        return ConnectionRecord(
            connection_id=connection_id,
            user_id=fields["u"],
            epoch=fields["e"],
            checkpoints=decode_checkpoints(fields.get("c", "")),
            updated=int(fields["t"]) / 1000,
            live=fields.get("l") == "1" and int(fields.get("x", "0")) > int(now_ms),
            snapshot=fields.get("s", ""),
        )

    async def forget(self, connection_id: str) -> None:
        user = await self._user_of(connection_id)
        self._local.pop(connection_id, None)
        if user is None:
            return
        await self._forget(
            keys=[self._record_key(connection_id), self._live_key(user), self._users_key],
            args=[connection_id, user],
        )

    async def live_connections(self, user_id: str) -> int:
        count = await self._live_count(
            keys=[self._live_key(user_id), self._users_key], args=[user_id]
        )
        return int(count)

    async def connected_users(self) -> set[str]:
        users = await self._connected(keys=[self._users_key])
        return {u.decode() for u in users}

    def local_count(self) -> int:
        return len(self._local)

    def __repr__(self) -> str:
        return f"RedisConnectionRegistry(owner={self.owner!r}, local={len(self._local)})"
