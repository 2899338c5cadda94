"""The channel lists and lookups clients load: a team's public and archived channels, channel
search, lookup by name, a user's channels, and channel stats. Every method checks the caller's
access first (through `ChannelAccess` and `TeamAccess`, its peers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, bindparam, func, or_, select

from hubbub.errors import forbidden, not_found
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_model import CHANNEL_NAME_MAX, channel_json
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, posts, users

SEARCH_LIMIT = 100


# `GET /channels/{id}/stats`, asked on every channel switch: both counts in one statement,
# built once.
_STATS_CHANNEL = bindparam("p_channel_id", type_=String)
_STATS = select(
    select(func.count())
    .select_from(channel_members.join(users, users.c.id == channel_members.c.user_id))
    .where(channel_members.c.channel_id == _STATS_CHANNEL, users.c.delete_at == 0)
    .scalar_subquery(),
    select(func.count())
    .select_from(posts)
    .where(posts.c.channel_id == _STATS_CHANNEL, posts.c.is_pinned, posts.c.delete_at == 0)
    .scalar_subquery(),
)


class ChannelDirectory:
    """Read-only channel queries for clients."""

    def __init__(
        self, db: Database, access: ChannelAccess, teams: TeamAccess, permissions: Permissions
    ) -> None:
        self.db = db
        self.access = access
        self.permissions = permissions
        self.teams = teams

    async def _rows(self, query: Any) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return [channel_json(r) for r in (await conn.execute(query)).all()]

    async def public_for_team(
        self, session: Session, team_id: str, page: int, per_page: int
    ) -> list[dict[str, Any]]:
        await self.access.require_team_reader(session, team_id)
        query = (
            select(channels)
            .where(channels.c.team_id == team_id, channels.c.type == "O", channels.c.delete_at == 0)
            .order_by(channels.c.display_name, channels.c.id)
            .offset(page * per_page)
            .limit(per_page)
        )
        return await self._rows(query)

    async def public_by_ids(
        self, session: Session, team_id: str, channel_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        await self.access.require_team_reader(session, team_id)
        query = (
            select(channels)
            .where(
                channels.c.team_id == team_id,
                channels.c.type == "O",
                channels.c.id.in_(list(channel_ids)),
            )
            .order_by(channels.c.display_name, channels.c.id)
        )
        return await self._rows(query)

    async def deleted_for_team(
        self, session: Session, team_id: str, page: int, per_page: int
    ) -> list[dict[str, Any]]:
        """Archived public channels, and archived private ones the caller is a member of."""
        await self.access.require_team_reader(session, team_id)
        mine = select(channel_members.c.channel_id).where(
            channel_members.c.user_id == session.user_id
        )
        query = (
            select(channels)
            .where(
                channels.c.team_id == team_id,
                channels.c.delete_at != 0,
                or_(
                    channels.c.type == "O",
                    (channels.c.type == "P") & channels.c.id.in_(mine),
                ),
            )
            .order_by(channels.c.display_name, channels.c.id)
            .offset(page * per_page)
            .limit(per_page)
        )
        return await self._rows(query)

    async def search_team(self, session: Session, team_id: str, term: str) -> list[dict[str, Any]]:
        """Public channels whose name or a word of the display name starts with `term`; callers
        outside the team only find channels they are a member of."""
        await self.teams.get_row(team_id)
        like = _escape_like(term.strip().lower()) + "%"
        name, display = func.lower(channels.c.name), func.lower(channels.c.display_name)
        query = (
            select(channels)
            .where(
                channels.c.team_id == team_id,
                channels.c.delete_at == 0,
                or_(
                    name.like(like, escape="\\"),
                    name.like("%-" + like, escape="\\"),
                    name.like("%\\_" + like, escape="\\"),
                    display.like(like, escape="\\"),
                    display.like("% " + like, escape="\\"),
                ),
            )
            .order_by(channels.c.display_name, channels.c.id)
            .limit(SEARCH_LIMIT)
        )
        if await self.teams.has(session, team_id, "list_team_channels"):
            query = query.where(channels.c.type == "O")
        else:
            mine = select(channel_members.c.channel_id).where(
                channel_members.c.user_id == session.user_id
            )
            query = query.where(channels.c.id.in_(mine))
        return await self._rows(query)

    async def by_name(
        self, session: Session, team_id: str, name: str, include_deleted: bool
    ) -> dict[str, Any]:
        """A channel by team and name; a private channel the caller cannot read is a 404."""
        row = None
        if len(name) <= CHANNEL_NAME_MAX and "\x00" not in name:
            async with self.db.read() as conn:
                query = select(channels).where(
                    channels.c.team_id == team_id, channels.c.name == name
                )
                row = (await conn.execute(query)).first()
        missing = not_found("channel", "app.channel.get_by_name.missing.app_error")
        if row is None or (row.delete_at and not include_deleted):
            raise missing
        if not await self.access.can_read(session, row):
            if row.type != "O":
                raise missing
            raise forbidden("read_channel_content")
        return channel_json(row)

    async def by_team_name(
        self, session: Session, team_name: str, name: str, include_deleted: bool
    ) -> dict[str, Any]:
        team = await self.teams.get_by_name_row(team_name)
        return await self.by_name(session, team.id, name, include_deleted)

    async def for_user(
        self,
        session: Session,
        user_id: str,
        team_id: str | None,
        include_deleted: bool = False,
        last_delete_at: int = 0,
    ) -> list[dict[str, Any]]:
        """The user's channels: in `team_id` plus their direct and group channels, or in every
        team when `team_id` is None. Archived ones only with `include_deleted` (and, with
        `last_delete_at`, only those archived after it)."""
        await self.permissions.require_user(session, user_id)
        if team_id is not None:
            await self.teams.require_member(session, team_id)
        query = (
            select(channels)
            .join(channel_members, channel_members.c.channel_id == channels.c.id)
            .where(channel_members.c.user_id == user_id)
            .order_by(channels.c.display_name, channels.c.id)
        )
        if team_id is not None:
            query = query.where(channels.c.team_id.in_([team_id, ""]))
        if not include_deleted:
            query = query.where(channels.c.delete_at == 0)
        elif last_delete_at:
            query = query.where(
                or_(channels.c.delete_at == 0, channels.c.delete_at > last_delete_at)
            )
        return await self._rows(query)

    async def stats(self, session: Session, channel_id: str) -> dict[str, Any]:
        await self.access.require_read(session, channel_id)
        async with self.db.read() as conn:
            counts = (await conn.execute(_STATS, {"p_channel_id": channel_id})).one()
        members, pinned = counts
        return {
            "channel_id": channel_id,
            "member_count": int(members),
            "guest_count": 0,
            "pinnedpost_count": int(pinned),
            "files_count": 0,
        }


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
