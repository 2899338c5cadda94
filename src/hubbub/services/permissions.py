"""Permission checks resolved from role definitions, the way Mattermost resolves them
(`app/authorization.go`). Every check in hubbub that asks "may this caller do X" comes here.

A caller's permissions come from three scopes:

- system: the user's roles (`users.roles`, carried by the session: `system_user`,
  `system_admin`, `system_user_access_token`, ...);
- team: the caller's active team membership (`team_user`/`team_admin`/`team_guest` from the
  scheme flags, plus any explicit roles), for a team-scoped check;
- channel: the caller's channel membership likewise, for a channel-scoped check.

A wider scope covers a narrower one, in Mattermost's order: a channel check passes if the
channel roles grant the permission, or the system roles grant `manage_system`, or (for a team
channel) the team roles or the system roles grant it, or (for a direct or group channel) the
system roles grant it. A team check passes if the team roles or the system roles grant it. There
is no other rule: `system_admin` may do everything only because its role holds every permission.

The role definitions (and any admin patch to them) come from `RolesService`, so what the API
allows and what the apps read from `/roles/names` cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, select

from hubbub.errors import forbidden
from hubbub.services.roles import RolesService
from hubbub.services.session import Session
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, team_members, users

MANAGE_SYSTEM = "manage_system"
EDIT_OTHER_USERS = "edit_other_users"


def member_roles(explicit: str, guest: bool, user: bool, admin: bool, scope: str) -> list[str]:
    """A membership's role names: the explicit ones plus those its scheme flags imply."""
    names = explicit.split()
    for flag, name in (
        (guest, f"{scope}_guest"),
        (user, f"{scope}_user"),
        (admin, f"{scope}_admin"),
    ):
        if flag and name not in names:
            names.append(name)
    return names


class _NotAMember:
    """A caller's membership as read: there is none (as opposed to None, not read yet)."""

    def __repr__(self) -> str:
        return "NOT_A_MEMBER"


NOT_A_MEMBER: Any = _NotAMember()


def channel_member_roles(row: Any) -> list[str]:
    """The role names of a channel membership row (or of a row carrying its columns)."""
    return member_roles(row.roles, row.scheme_guest, row.scheme_user, row.scheme_admin, "channel")


def channel_permission(channel_type: str, public: str, private: str) -> str:
    """The public or the private flavour of a channel permission, by the channel's type."""
    return public if channel_type == "O" else private


class Permissions:
    def __init__(self, db: Database, roles: RolesService) -> None:
        self.db = db
        self.roles = roles

    async def granted(self, role_names: Iterable[str], permission: str) -> bool:
        return permission in await self.roles.permissions_of(role_names)

    # System scope

    async def has(self, session: Session, permission: str) -> bool:
        """System scope: the session's (the user's) own roles."""
        return await self.granted(session.roles.split(), permission)

    async def require(self, session: Session, permission: str) -> None:
        """403 `api.context.permissions.app_error` unless the system roles grant `permission`."""
        if not await self.has(session, permission):
            raise forbidden(permission)

    async def can_act_for_user(self, session: Session, user_id: str) -> bool:
        """Mattermost's `SessionHasPermissionToUser`: oneself; `manage_system`; or
        `edit_other_users`, but never over a system admin."""
        if session.user_id == user_id or await self.has(session, MANAGE_SYSTEM):
            return True
        if not await self.has(session, EDIT_OTHER_USERS):
            return False
        async with self.db.read() as conn:
            roles = (
                await conn.execute(select(users.c.roles).where(users.c.id == user_id))
            ).scalar()
        return roles is not None and "system_admin" not in roles.split()

    async def require_user(self, session: Session, user_id: str) -> None:
        """Acting on another user's data (their preferences, memberships, sessions, ...): 403
        naming `edit_other_users` unless `can_act_for_user`."""
        if not await self.can_act_for_user(session, user_id):
            raise forbidden(EDIT_OTHER_USERS)

    # Team scope

    async def has_for_team(self, session: Session, team_id: str, permission: str) -> bool:
        if team_id and await self.granted(
            await self.team_roles(session.user_id, team_id), permission
        ):
            return True
        return await self.has(session, permission)

    async def require_for_team(self, session: Session, team_id: str, permission: str) -> None:
        if not await self.has_for_team(session, team_id, permission):
            raise forbidden(permission)

    # Channel scope

    async def has_for_channel(
        self,
        session: Session,
        channel: str | Row[Any],
        permission: str,
        member: Any | None = None,
    ) -> bool:
        """`channel` is an id or the channel's row (which saves a read); `member` the caller's
        membership row when the caller already has it, `NOT_A_MEMBER` when the caller knows
        there is none (None: read it)."""
        if isinstance(channel, str):
            async with self.db.read() as conn:
                row = (await conn.execute(select(channels).where(channels.c.id == channel))).first()
            if row is None:
                return False
            channel = row
        if member is None:
            member = await self.channel_member(session.user_id, channel.id)
        elif member is NOT_A_MEMBER:
            member = None
        if member is not None and await self.granted(channel_member_roles(member), permission):
            return True
        if await self.has(session, MANAGE_SYSTEM):
            return True
        if channel.team_id:
            return await self.has_for_team(session, channel.team_id, permission)
        return await self.has(session, permission)

    async def can_read_channel(
        self, session: Session, channel: Row[Any], member: Any | None = None
    ) -> bool:
        """Mattermost's `HasPermissionToReadChannel`: `read_channel_content` on the channel, or
        for a public channel `read_public_channel` on its team. `member` as `has_for_channel`'s."""
        if await self.has_for_channel(session, channel, "read_channel_content", member):
            return True
        return channel.type == "O" and await self.has_for_team(
            session, channel.team_id, "read_public_channel"
        )

    # Memberships

    async def team_roles(self, user_id: str, team_id: str) -> list[str]:
        """The user's role names in the team; none if not an active member."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(team_members).where(
                        team_members.c.team_id == team_id,
                        team_members.c.user_id == user_id,
                        team_members.c.delete_at == 0,
                    )
                )
            ).first()
        if row is None:
            return []
        return member_roles(row.roles, row.scheme_guest, row.scheme_user, row.scheme_admin, "team")

    async def channel_member(self, user_id: str, channel_id: str) -> Row[Any] | None:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(channel_members).where(
                        channel_members.c.channel_id == channel_id,
                        channel_members.c.user_id == user_id,
                    )
                )
            ).first()
