"""Permission checks resolved from role definitions, the way Mattermost resolves them.

A caller's permissions come from three scopes:

- system: the roles on the session (`system_user`, `system_admin`, ...);
- team: the caller's team membership (`team_user`/`team_admin`/`team_guest` from the scheme
  flags, plus any explicit roles), for a team-scoped check;
- channel: the caller's channel membership likewise, for a channel-scoped check.

As in Mattermost, a wider scope covers a narrower one: a channel check passes if the channel
roles, the team roles of the channel's team, or the system roles grant the permission. The
role definitions (and any admin patch to them) come from `RolesService`, so what the API allows
and what the apps read from `/roles/names` cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from hubbub.services.roles import RolesService
from hubbub.services.session import Session
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, team_members


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


class Permissions:
    def __init__(self, db: Database, roles: RolesService) -> None:
        self.db = db
        self.roles = roles

    async def granted(self, role_names: Iterable[str], permission: str) -> bool:
        return permission in await self.roles.permissions_of(role_names)

    async def has(self, session: Session, permission: str) -> bool:
        """System scope: the session's own roles."""
        return await self.granted(session.roles.split(), permission)

    async def has_for_team(self, session: Session, team_id: str, permission: str) -> bool:
        if await self.has(session, permission):
            return True
        return await self.granted(await self.team_roles(session.user_id, team_id), permission)

    async def has_for_channel(self, session: Session, channel_id: str, permission: str) -> bool:
        if await self.has(session, permission):
            return True
        names = await self.channel_roles(session.user_id, channel_id)
        if await self.granted(names, permission):
            return True
        async with self.db.read() as conn:
            team_id = (
                await conn.execute(select(channels.c.team_id).where(channels.c.id == channel_id))
            ).scalar()
        if not team_id:  # direct and group messages belong to no team
            return False
        return await self.granted(await self.team_roles(session.user_id, team_id), permission)

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

    async def channel_roles(self, user_id: str, channel_id: str) -> list[str]:
        """The user's role names in the channel; none if not a member."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(channel_members).where(
                        channel_members.c.channel_id == channel_id,
                        channel_members.c.user_id == user_id,
                    )
                )
            ).first()
        if row is None:
            return []
        return member_roles(
            row.roles, row.scheme_guest, row.scheme_user, row.scheme_admin, "channel"
        )
