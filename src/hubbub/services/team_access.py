"""Who belongs to a team and what they may do there: the team lookups and permission checks that
`TeamsService`, `TeamMembers`, the channel services and the routes share.

Read-only, and it depends on nothing but the database and `Permissions`, so every service that
needs to ask about a team takes a `TeamAccess` as a peer instead of reaching into another service.

Every check is a permission resolved from the caller's team and system roles (`Permissions`), as
in Mattermost: with the default roles team members view the team (`view_team`), team admins
manage it, and an open team is visible to everyone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.errors import not_found
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.services.team_model import TEAM_NAME_MAX, team_json
from hubbub.store.db import Database
from hubbub.store.tables import team_members, teams


class TeamAccess:
    """Team rows, active memberships, and the `require_*` checks built on them."""

    def __init__(self, db: Database, permissions: Permissions) -> None:
        self.db = db
        self.permissions = permissions

    # Lookups

    async def get_row(self, team_id: str, conn: AsyncConnection | None = None) -> Row[Any]:
        """The team's row (deleted ones too); 404 `app.team.get.find.app_error` if none."""
        if conn is None:
            async with self.db.read() as c:
                return await self.get_row(team_id, c)
        row = (await conn.execute(select(teams).where(teams.c.id == team_id))).first()
        if row is None:
            raise not_found("team", "app.team.get.find.app_error")
        return row

    async def get(self, team_id: str) -> dict[str, Any]:
        """The Team JSON (not sanitized); 404 `app.team.get.find.app_error` if there is none."""
        return team_json(await self.get_row(team_id))

    async def get_by_name_row(self, name: str) -> Row[Any]:
        """The team's row by name; 404 `app.team.get_by_name.missing.app_error` if none."""
        row = None
        if len(name) <= TEAM_NAME_MAX and "\x00" not in name:
            async with self.db.read() as conn:
                row = (await conn.execute(select(teams).where(teams.c.name == name))).first()
        if row is None:
            raise not_found("team", "app.team.get_by_name.missing.app_error")
        return row

    async def member_row(
        self, user_id: str, team_id: str, conn: AsyncConnection | None = None
    ) -> Row[Any] | None:
        """The active membership row, or None."""
        if conn is None:
            async with self.db.read() as c:
                return await self.member_row(user_id, team_id, c)
        query = select(team_members).where(
            team_members.c.team_id == team_id,
            team_members.c.user_id == user_id,
            team_members.c.delete_at == 0,
        )
        return (await conn.execute(query)).first()

    async def is_member(self, user_id: str, team_id: str) -> bool:
        """True if `user_id` is an active (not removed) member of the team."""
        return await self.member_row(user_id, team_id) is not None

    # Checks

    async def require_member(self, session: Session, team_id: str) -> dict[str, Any]:
        """The team's JSON if the caller may view it (`view_team`: members, and whoever holds it
        system-wide); 404 if the team does not exist, 403 `api.context.permissions.app_error`
        otherwise."""
        row = await self.get_row(team_id)
        await self.permissions.require_for_team(session, team_id, "view_team")
        return team_json(row)

    async def require_view(self, session: Session, row: Row[Any]) -> None:
        """Mattermost's `getTeam` rule: an open team is visible to everyone, others need
        `view_team`."""
        if row.allow_open_invite and row.type == "O":
            return
        await self.permissions.require_for_team(session, row.id, "view_team")

    async def require(self, session: Session, team_id: str, permission: str) -> Row[Any]:
        """The team row if the caller's team or system roles grant `permission`; 404 if the team
        does not exist, else 403 naming `permission`."""
        row = await self.get_row(team_id)
        await self.permissions.require_for_team(session, team_id, permission)
        return row

    async def has(self, session: Session, team_id: str, permission: str) -> bool:
        return await self.permissions.has_for_team(session, team_id, permission)
