"""The per-channel event sequence (DESIGN §4 invariant 6).

Every change that is broadcast to a channel (a post created, edited or deleted, a reaction added
or removed) takes the next number from `channels.event_seq` inside its own write transaction. The
update locks the channel row until commit, so a channel's numbers are assigned in commit order.
The number travels with the event as `Event.extra["event_seq"]`.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.errors import not_found
from hubbub.store.tables import channels

EXTRA_KEY = "event_seq"


async def next_event_seq(conn: AsyncConnection, channel_id: str) -> int:
    row = (
        await conn.execute(
            update(channels)
            .where(channels.c.id == channel_id)
            .values(event_seq=channels.c.event_seq + 1)
            .returning(channels.c.event_seq)
        )
    ).first()
    if row is None:
        raise not_found("channel", "app.channel.get.existing.app_error")
    return int(row.event_seq)
