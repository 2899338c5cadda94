"""Who may read, post in and manage a channel: the channel lookups and permission checks that the
channel services, posts, reactions, files, search and the websocket share.

Read-only, and it depends only on the database and `TeamAccess`, so every service that needs to
ask about a channel takes a `ChannelAccess` as a peer instead of reaching into another service.

The rules follow Mattermost's default permission scheme: system admins everything; a channel
member reads, posts and manages the channel; a team member reads public channels; team admins
manage the team's public and private channels; direct and group channels belong to their members
only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.errors import AppError, forbidden, not_found
from hubbub.services.channel_model import channel_json
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels


def check_post(session: Session, row: Row[Any] | None, is_member: bool) -> Row[Any]:
    """Who may post in a channel, on its row as already read (None: there is none, 404): a member
    or a system admin, and the channel not archived (403
    `api.post.create_post.can_not_post_to_deleted.error`). Returns the row."""
    if row is None:
        raise not_found("channel", "app.channel.get.existing.app_error")
    if not session.is_system_admin and not is_member:
        raise forbidden("create_post")
    if row.delete_at:
        raise AppError(
            "api.post.create_post.can_not_post_to_deleted.error",
            "Can not post to deleted channel.",
            403,
        )
    return row


class ChannelAccess:
    """Channel rows, memberships, and the `require_*` checks built on them."""

    def __init__(self, db: Database, teams: TeamAccess) -> None:
        self.db = db
        self.teams = teams

    # Lookups

    async def get_row(self, channel_id: str, conn: AsyncConnection | None = None) -> Row[Any]:
        if conn is None:
            async with self.db.read() as c:
                return await self.get_row(channel_id, c)
        row = (await conn.execute(select(channels).where(channels.c.id == channel_id))).first()
        if row is None:
            raise not_found("channel", "app.channel.get.existing.app_error")
        return row

    async def get(self, channel_id: str) -> dict[str, Any]:
        """The Channel JSON; 404 `app.channel.get.existing.app_error` if there is none."""
        return channel_json(await self.get_row(channel_id))

    async def member_row(
        self, user_id: str, channel_id: str, conn: AsyncConnection | None = None
    ) -> Row[Any] | None:
        if conn is None:
            async with self.db.read() as c:
                return await self.member_row(user_id, channel_id, c)
        query = select(channel_members).where(
            channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
        )
        return (await conn.execute(query)).first()

    async def is_member(self, user_id: str, channel_id: str) -> bool:
        """True if `user_id` is a member of the channel."""
        return await self.member_row(user_id, channel_id) is not None

    async def member_user_ids(self, channel_id: str) -> list[str]:
        """The ids of the channel's members, sorted."""
        query = (
            select(channel_members.c.user_id)
            .where(channel_members.c.channel_id == channel_id)
            .order_by(channel_members.c.user_id)
        )
        async with self.db.read() as conn:
            return [r.user_id for r in (await conn.execute(query)).all()]

    async def readable_channel_ids(self, user_id: str, team_id: str | None) -> list[str]:
        """The channels `user_id` is a member of (archived ones included): with `team_id`, those of
        that team plus the user's direct and group channels; with None, all of them."""
        query = select(channel_members.c.channel_id).where(channel_members.c.user_id == user_id)
        if team_id is not None:
            query = query.join(channels, channels.c.id == channel_members.c.channel_id).where(
                channels.c.team_id.in_([team_id, ""])
            )
        async with self.db.read() as conn:
            return [r.channel_id for r in (await conn.execute(query)).all()]

    # Checks

    async def can_read(self, session: Session, row: Row[Any]) -> bool:
        if session.is_system_admin or await self.is_member(session.user_id, row.id):
            return True
        return row.type == "O" and await self.teams.is_member(session.user_id, row.team_id)

    async def require_read(self, session: Session, channel_id: str) -> dict[str, Any]:
        """The Channel JSON if the caller may read it: a member, a team member for a public
        channel, or a system admin. 404 for an unknown channel, else 403."""
        row = await self.get_row(channel_id)
        if not await self.can_read(session, row):
            raise forbidden("read_channel")
        return channel_json(row)

    async def require_post(self, session: Session, channel_id: str) -> dict[str, Any]:
        """The Channel JSON if the caller may post there (`check_post`)."""
        row = await self.get_row(channel_id)
        member = session.is_system_admin or await self.is_member(session.user_id, channel_id)
        check_post(session, row, member)
        return channel_json(row)

    async def require_manage(self, session: Session, row: Row[Any], permission: str) -> None:
        """Managing a channel (properties, members, archive): a member, a team admin for a public
        or private channel, or a system admin."""
        if session.is_system_admin or await self.is_member(session.user_id, row.id):
            return
        if row.type in ("O", "P") and await self.teams.is_admin(session.user_id, row.team_id):
            return
        raise forbidden(permission)

    async def require_team_reader(self, session: Session, team_id: str) -> None:
        """Listing a team's channels needs team membership (`list_team_channels`)."""
        await self.teams.get_row(team_id)
        if not session.is_system_admin and not await self.teams.is_member(session.user_id, team_id):
            raise forbidden("list_team_channels")
