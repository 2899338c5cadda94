"""Event scope: `typing` and reaction events only for connections that have their channel open.

Mattermost's `FeatureFlags.WebSocketEventScope` (on by default since v10, always on in v11). A
client tells the server what it shows with the `presence` action: `{channel_id}` when it
switches channel, `{team_id}` when it switches team, `{thread_channel_id, is_thread_view}` when
it opens a thread in the right-hand side (`is_thread_view` false) or in the threads view (true).
A connection that has never said anything gets every event, as before. Otherwise a `typing`,
`reaction_added` or `reaction_removed` event of channel C is left out when the connection has
an open channel other than C **and** both of its thread slots are set to channels other than C:
exactly Mattermost's rule (`WebConn.notInChannel && notInThread`), so a client sees the same
events here as there.

Why it matters: every typing event used to reach every online member of the channel, and each
web app then fetched the typist's profile and status at once; at 750 simulated users those
requests were 77-85 % of all requests (issue 17).

Pure state, no I/O: the websocket endpoint feeds `presence` data into a connection's
`ChannelView`, the hub asks `hides(channel_id)` when delivering a scoped event. The filter runs
per connection at delivery, on whichever node holds the connection, so it works the same in a
cluster (the event crossed the bus to every node holding a recipient).
"""

from __future__ import annotations

from typing import Any

import orjson

# The events Mattermost scopes to the open channel or thread.
SCOPED_EVENTS = frozenset({"typing", "reaction_added", "reaction_removed"})

UNSET = None  # Mattermost's "<>": never told. An empty string is a value (nothing open).


class ChannelView:
    """What one connection has open, from its `presence` actions."""

    __slots__ = ("channel", "rhs_thread", "team", "thread_view")

    def __init__(self) -> None:
        self.channel: str | None = UNSET
        self.team: str | None = UNSET
        self.rhs_thread: str | None = UNSET  # channel of the thread in the right-hand side
        self.thread_view: str | None = UNSET  # channel of the thread in the threads view

    def apply(self, data: dict[str, Any]) -> None:
        """One `presence` action's data; keys that are absent or not strings change nothing."""
        channel = data.get("channel_id")
        if isinstance(channel, str):
            self.channel = channel
        team = data.get("team_id")
        if isinstance(team, str):
            self.team = team
        thread_channel = data.get("thread_channel_id")
        if isinstance(thread_channel, str):
            if data.get("is_thread_view") is True:
                self.thread_view = thread_channel
            else:
                self.rhs_thread = thread_channel

    def hides(self, channel_id: str) -> bool:
        """Whether a scoped event of `channel_id` is left out for this connection."""
        return (
            self.channel is not UNSET
            and self.channel != channel_id
            and self.rhs_thread is not UNSET
            and self.rhs_thread != channel_id
            and self.thread_view is not UNSET
            and self.thread_view != channel_id
        )


def scoped_channel(event: str, payload: bytes) -> str:
    """The channel a scoped event belongs to ("" for any other event, or one without a
    channel): read once per event from its broadcast, not once per connection."""
    if event not in SCOPED_EVENTS:
        return ""
    broadcast = orjson.loads(payload).get("broadcast") or {}
    channel = broadcast.get("channel_id")
    return channel if isinstance(channel, str) else ""
