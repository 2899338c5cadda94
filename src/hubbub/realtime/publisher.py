"""Publishing: decide the recipients of an event, then append it to their logs after commit.

Recipients are computed from membership as it is inside the transaction that made the change
(DESIGN §4 invariant 7), so a brand-new DM or channel member is never filtered out by a stale
cache. The append happens only once that transaction has committed.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.connections import ConnectionRegistry
from hubbub.cluster.eventlog import EventLog, EventMeta
from hubbub.cluster.events import Event, EventPublisher
from hubbub.cluster.outbox import Outbox
from hubbub.observability.metrics import Metrics
from hubbub.realtime.protocol import encode_event_body
from hubbub.store.audience import CHANNEL_MEMBERS, TEAM_MEMBERS, split_members
from hubbub.store.db import Database, after_commit

log = logging.getLogger("hubbub.realtime")


class RealtimePublisher(EventPublisher):
    """Turns service events into log appends."""

    def __init__(
        self,
        db: Database,
        eventlog: EventLog,
        registry: ConnectionRegistry,
        metrics: Metrics,
        outbox: Outbox | None = None,
    ) -> None:
        self.db = db
        self.eventlog = eventlog
        self.registry = registry
        self.metrics = metrics
        self.outbox = outbox

    async def publish(self, event: Event, conn: AsyncConnection | None = None) -> None:
        self.metrics.events.labels(event.event).inc()
        recipients = await self.recipients(event, conn)
        body = encode_event_body(event.event, event.data, event.broadcast.to_json())
        meta = _meta(event)
        published_at = time.monotonic()
        channel_seq = int(event.extra.get("event_seq", 0)) if event.broadcast.channel_id else 0

        async def append() -> None:
            if recipients:
                await self.eventlog.append(recipients, body, meta)
            self.metrics.delivery_latency.observe(time.monotonic() - published_at)

        if conn is None or not conn.in_transaction():
            await append()
        elif self.outbox is not None and not event.ephemeral and (recipients or channel_seq):
            # A channel event goes through the outbox even with nobody to deliver it to: its
            # channel sequence number must still be published, or the channel's next events
            # would wait for it (per-channel order, see hubbub/cluster/outbox.py).
            row = await self.outbox.add(
                conn,
                recipients,
                body,
                meta,
                channel_id=event.broadcast.channel_id,
                channel_seq=channel_seq,
            )
            outbox = self.outbox

            async def publish_row() -> None:
                await outbox.publish(row)
                self.metrics.delivery_latency.observe(time.monotonic() - published_at)

            after_commit(conn, publish_row)
        else:
            after_commit(conn, append)

    async def recipients(self, event: Event, conn: AsyncConnection | None) -> list[str]:
        b = event.broadcast
        if b.user_id:
            users = [b.user_id]
        elif b.channel_id and b.members is not None:
            users = list(b.members)  # read by the caller in the event's transaction
        elif b.channel_id:
            users = await self._members(CHANNEL_MEMBERS, {"p_channel_id": b.channel_id}, conn)
        elif b.team_id:
            users = await self._members(TEAM_MEMBERS, {"p_team_id": b.team_id}, conn)
        else:
            users = sorted(await self.registry.connected_users())
        if b.omit_users:
            users = [u for u in users if u not in b.omit_users]
        return users

    async def _members(
        self, query: Select[str], params: dict[str, str], conn: AsyncConnection | None
    ) -> list[str]:
        if conn is None:
            # Recipients come from the primary: membership must be current (invariant 7),
            # never a replica's possibly older view.
            async with self.db.read_primary() as read_conn:
                return await self._members(query, params, read_conn)
        return split_members((await conn.execute(query, params)).scalar())


_SHARED_META: dict[tuple[str, bool], EventMeta] = {}


def _meta(event: Event) -> EventMeta:
    """The event's delivery metadata. Without connection targeting (nearly every event) one
    shared instance per event type: the log keeps a meta per event for minutes, and fewer
    long-lived objects keep the collector's full passes short."""
    b = event.broadcast
    if b.connection_id or b.omit_connection_id:
        return EventMeta(event.event, event.ephemeral, b.connection_id, b.omit_connection_id)
    key = (event.event, event.ephemeral)
    meta = _SHARED_META.get(key)
    if meta is None:
        meta = _SHARED_META[key] = EventMeta(event.event, event.ephemeral)
    return meta
