"""Events that services publish when something changes, in Mattermost's websocket shapes.

Services call `EventPublisher.publish` inside the write transaction that made the change, passing
that transaction's connection, so a reliable implementation can write an outbox row atomically
with the change (DESIGN §4 invariant 1). The realtime layer delivers them to websockets.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Who receives an event, as in Mattermost's `broadcast` object.

    Exactly one of `channel_id`, `team_id`, `user_id` selects the audience (none: everyone);
    `omit_users` and `omit_connection_id` exclude some of them. `members`: the channel's members
    as the publisher would read them, already read by the caller inside the event's transaction
    (`hubbub.store.audience.CHANNEL_MEMBERS`); not part of the wire shape.
    """

    channel_id: str = ""
    team_id: str = ""
    user_id: str = ""
    omit_users: frozenset[str] = frozenset()
    connection_id: str = ""
    omit_connection_id: str = ""
    members: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "omit_users": {u: True for u in sorted(self.omit_users)} or None,
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "team_id": self.team_id,
            "connection_id": self.connection_id,
            "omit_connection_id": self.omit_connection_id,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One event: `event` is Mattermost's name (`posted`, `reaction_added`, ...); `data` already
    has JSON-in-JSON fields encoded as strings where Mattermost does so."""

    event: str
    data: dict[str, Any]
    broadcast: Broadcast
    ephemeral: bool = False  # typing, status_change: best effort, may be dropped
    extra: dict[str, Any] = field(default_factory=dict)


class EventPublisher(abc.ABC):
    @abc.abstractmethod
    async def publish(self, event: Event, conn: AsyncConnection | None = None) -> None:
        """Publishes `event`. With `conn` (an open write transaction) the event belongs to that
        transaction: it must be delivered if and only if the transaction commits."""
