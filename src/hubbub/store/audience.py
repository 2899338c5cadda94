"""Who an event reaches, read as one row: the members of a channel or of a team.

Members come back as one string (one row through the driver instead of one per member: less
than half the cost at 1,000 members) and `split_members` turns it into ids; ids never contain
the separator. The statements are built once, so their compiled form is found by a memoized
cache key. `RealtimePublisher` runs them inside the publishing transaction (DESIGN §4 invariant
7); `PostsService.create` runs the channel's with the post's own writes, in the same trip to
SQLite's thread, and hands the result over in `Broadcast.members`.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select

from hubbub.store.tables import channel_members, team_members

_SEPARATOR = " "

CHANNEL_MEMBERS = select(func.aggregate_strings(channel_members.c.user_id, _SEPARATOR)).where(
    channel_members.c.channel_id == bindparam("p_channel_id")
)
TEAM_MEMBERS = select(func.aggregate_strings(team_members.c.user_id, _SEPARATOR)).where(
    team_members.c.team_id == bindparam("p_team_id"), team_members.c.delete_at == 0
)


def split_members(joined: str | None) -> list[str]:
    return joined.split(_SEPARATOR) if joined else []
