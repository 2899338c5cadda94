"""Who may read, post in and manage a channel: the channel lookups and permission checks that the
channel services, posts, reactions, files, search and the websocket share.

Read-only, and it depends only on the database, `TeamAccess` and `Permissions`, so every service
that needs to ask about a channel takes a `ChannelAccess` as a peer instead of reaching into
another service.

Every check is a permission resolved from the caller's channel, team and system roles
(`Permissions`, Mattermost's channel -> team -> system fallback). With the default roles: a
channel member reads, posts and manages the channel; a team member reads public channels; a
team admin who is not a member may manage the members of the team's channels and delete others'
posts there, but not edit or archive the channel (`team_admin` holds neither
`manage_*_channel_properties` nor `delete_*_channel`); direct and group channels belong to their
members (and to whoever holds the permission system-wide: system admins).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, String, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.errors import AppError, forbidden, not_found
from hubbub.services.channel_model import channel_json
from hubbub.services.permissions import NOT_A_MEMBER, Permissions, channel_member_roles
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels

# The channel and the caller's membership in it (NULL columns when not a member), in one
# statement built once: what deciding `read_channel_content` needs for almost every caller.
_CHANNEL_AND_MEMBERSHIP = (
    select(
        channels,
        channel_members.c.user_id.label("member_user_id"),
        channel_members.c.roles.label("member_roles"),
        channel_members.c.scheme_guest,
        channel_members.c.scheme_user,
        channel_members.c.scheme_admin,
    )
    .select_from(channels)
    .outerjoin(
        channel_members,
        and_(
            channel_members.c.channel_id == channels.c.id,
            channel_members.c.user_id == bindparam("p_user_id", type_=String),
        ),
    )
    .where(channels.c.id == bindparam("p_channel_id", type_=String))
)


class _Membership:
    """The membership columns of a `_CHANNEL_AND_MEMBERSHIP` row, as `channel_member_roles`
    reads them."""

    __slots__ = ("roles", "scheme_admin", "scheme_guest", "scheme_user")

    def __init__(self, row: Row[Any]) -> None:
        self.roles = row.member_roles
        self.scheme_guest = row.scheme_guest
        self.scheme_user = row.scheme_user
        self.scheme_admin = row.scheme_admin


class ChannelAccess:
    """Channel rows, memberships, and the `require_*` checks built on them."""

    def __init__(self, db: Database, teams: TeamAccess, permissions: Permissions) -> None:
        self.db = db
        self.teams = teams
        self.permissions = permissions

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
        return await self.permissions.can_read_channel(session, row)

    async def require_read(self, session: Session, channel_id: str) -> dict[str, Any]:
        """The Channel JSON if the caller may read it (`Permissions.can_read_channel`). 404 for
        an unknown channel, else 403."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    _CHANNEL_AND_MEMBERSHIP,
                    {"p_user_id": session.user_id, "p_channel_id": channel_id},
                )
            ).first()
        if row is None:
            raise not_found("channel", "app.channel.get.existing.app_error")
        member = NOT_A_MEMBER if row.member_user_id is None else _Membership(row)
        if not await self.permissions.can_read_channel(session, row, member):
            raise forbidden("read_channel_content")
        return channel_json(row)

    async def check_post(self, session: Session, row: Any, member: Any = None) -> Any:
        """Who may post in a channel, on its row as already read (None: there is none, 404):
        `create_post` on the channel, and the channel not archived (403
        `api.post.create_post.can_not_post_to_deleted.error`). `member`: a row carrying the
        caller's membership columns, when the caller read them with the channel. Returns the row."""
        if row is None:
            raise not_found("channel", "app.channel.get.existing.app_error")
        # The common case decided in memory: a member whose channel roles grant it.
        fast = member is not None and await self.permissions.granted(
            channel_member_roles(member), "create_post"
        )
        if not fast and not await self.permissions.has_for_channel(session, row, "create_post"):
            raise forbidden("create_post")
        if row.delete_at:
            raise AppError(
                "api.post.create_post.can_not_post_to_deleted.error",
                "Can not post to deleted channel.",
                403,
            )
        return row

    async def require_post(self, session: Session, channel_id: str) -> dict[str, Any]:
        """The Channel JSON if the caller may post there (`check_post`)."""
        return channel_json(await self.check_post(session, await self.get_row(channel_id)))

    async def require_upload(self, session: Session, channel_id: str) -> None:
        """Uploading a file to a channel: `upload_file` on it, and the channel not archived (the
        same 403 as posting there)."""
        row = await self.get_row(channel_id)
        await self.require(session, row, "upload_file")
        if row.delete_at:
            raise AppError(
                "api.post.create_post.can_not_post_to_deleted.error",
                "Can not post to deleted channel.",
                403,
            )

    async def require(self, session: Session, row: Row[Any], permission: str) -> None:
        """403 naming `permission` unless the caller's channel, team or system roles grant it."""
        if not await self.permissions.has_for_channel(session, row, permission):
            raise forbidden(permission)

    async def has(self, session: Session, row: Row[Any], permission: str) -> bool:
        return await self.permissions.has_for_channel(session, row, permission)

    async def require_team_reader(self, session: Session, team_id: str) -> None:
        """Listing a team's channels needs `list_team_channels` on the team."""
        await self.teams.get_row(team_id)
        await self.permissions.require_for_team(session, team_id, "list_team_channels")
