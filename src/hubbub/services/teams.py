"""Teams: creation (with the default channels), lookup, patch, update and soft delete.

Membership lives in `TeamMembers` (team_members.py) and the checks other services share in
`TeamAccess` (team_access.py); both are peers given to this service, never built by it. The typed
inputs (`NewTeam`, `TeamPatch`, `TeamUpdate`) are built by the routes from the request body.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.ids import new_id, now_ms
from hubbub.services.channel_model import DEFAULT_CHANNELS, new_channel_row
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.services.team_members import TeamMembers
from hubbub.services.team_model import TEAM_NAME_MAX, team_json, validate_team_fields
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import channels, team_members, teams


@dataclass(frozen=True, slots=True)
class NewTeam:
    """`POST /teams`: a field left out is blank (and then fails validation if it is required)."""

    name: str = ""
    display_name: str = ""
    type: str = ""
    description: str = ""
    company_name: str = ""
    allowed_domains: str = ""


@dataclass(frozen=True, slots=True)
class TeamPatch:
    """`PUT /teams/{id}/patch`: `None` leaves a field as it is."""

    display_name: str | None = None
    description: str | None = None
    company_name: str | None = None
    allowed_domains: str | None = None
    invite_id: str | None = None
    allow_open_invite: bool | None = None


@dataclass(frozen=True, slots=True)
class TeamUpdate:
    """`PUT /teams/{id}`: replaces the updatable fields; omitted ones are blank (and closed to
    open invites), as in Mattermost."""

    display_name: str = ""
    description: str = ""
    company_name: str = ""
    allowed_domains: str = ""
    allow_open_invite: bool = False


class TeamsService:
    """The team lifecycle; `members` is the peer that joins the creator to a new team."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        access: TeamAccess,
        permissions: Permissions,
        members: TeamMembers,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.users = users
        self.access = access
        self.permissions = permissions
        self.members = members

    async def exists(self, name: str) -> bool:
        """True if a team (not deleted) has this name."""
        if len(name) > TEAM_NAME_MAX or "\x00" in name:
            return False
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(teams.c.id).where(teams.c.name == name, teams.c.delete_at == 0)
                )
            ).first()
        return row is not None

    # Rendering for the caller

    async def render(self, session: Session, rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
        """Team JSON for the caller: sanitized where the caller may not manage the team."""
        rows = list(rows)
        can = self.permissions
        if await can.has(session, "manage_team"):
            return [team_json(r) for r in rows]
        return [
            team_json(r, sanitize=not await can.has_for_team(session, r.id, "manage_team"))
            for r in rows
        ]

    async def render_one(self, session: Session, row: Row[Any]) -> dict[str, Any]:
        return (await self.render(session, [row]))[0]

    # Team lifecycle

    async def create(self, session: Session, new: NewTeam) -> dict[str, Any]:
        """Creates a team with its default channels; the creator joins as team admin."""
        await self.permissions.require(session, "create_team")
        values: dict[str, Any] = {
            "name": new.name,
            "display_name": new.display_name,
            "description": new.description,
            "company_name": new.company_name,
            "allowed_domains": new.allowed_domains,
            "type": new.type,
        }
        validate_team_fields(values)
        creator = await self.users.get_row(session.user_id)
        now = now_ms()
        row = {
            **values,
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "email": creator.email,
            "invite_id": new_id(),
            # Kept in step with `type`, as Mattermost's privacy update does.
            "allow_open_invite": new.type == "O",
            "last_team_icon_update": 0,
        }
        async with self.db.write() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(teams).values(**row))
            except IntegrityError:
                raise AppError(
                    "app.team.save.existing.app_error", "A team with that name already exists.", 400
                ) from None
            for name, display_name in DEFAULT_CHANNELS:
                channel = new_channel_row(
                    team_id=row["id"],
                    type_="O",
                    name=name,
                    display_name=display_name,
                    creator_id="",
                )
                await conn.execute(insert(channels).values(**channel))
            await self.members.join(conn, row["id"], session.user_id, admin=True)
        return team_json(row)

    async def list_teams(
        self, session: Session, page: int, per_page: int, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """With `list_private_teams` every team; else the teams that allow open invites. Deleted
        ones only for `manage_system`."""
        can = self.permissions
        query = select(teams).order_by(teams.c.display_name, teams.c.id)
        if not await can.has(session, "list_private_teams"):
            query = query.where(teams.c.allow_open_invite)
        if not (include_deleted and await can.has(session, "manage_system")):
            query = query.where(teams.c.delete_at == 0)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.offset(page * per_page).limit(per_page))).all()
        return await self.render(session, rows)

    async def get_for(self, session: Session, team_id: str) -> dict[str, Any]:
        row = await self.access.get_row(team_id)
        await self.access.require_view(session, row)
        return await self.render_one(session, row)

    async def get_by_name_for(self, session: Session, name: str) -> dict[str, Any]:
        row = await self.access.get_by_name_row(name)
        await self.access.require_view(session, row)
        return await self.render_one(session, row)

    async def patch(self, session: Session, team_id: str, patch: TeamPatch) -> dict[str, Any]:
        """Applies a TeamPatch (only the fields given); `allow_open_invite` also sets `type`, and
        closing a team to open invites gives it a new `invite_id`."""
        await self.access.require(session, team_id, "manage_team")
        given = {
            "display_name": patch.display_name,
            "description": patch.description,
            "company_name": patch.company_name,
            "allowed_domains": patch.allowed_domains,
            "invite_id": patch.invite_id,
        }
        values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        open_invite = patch.allow_open_invite
        if open_invite is not None:
            values["allow_open_invite"] = open_invite
            values["type"] = "O" if open_invite else "I"
            if not open_invite:
                values["invite_id"] = new_id()
        return await self._save(team_id, values)

    async def update(self, session: Session, team_id: str, team: TeamUpdate) -> dict[str, Any]:
        """Replaces the updatable fields; `allow_open_invite` also sets `type`."""
        await self.access.require(session, team_id, "manage_team")
        values: dict[str, Any] = {
            "display_name": team.display_name,
            "description": team.description,
            "company_name": team.company_name,
            "allowed_domains": team.allowed_domains,
            "allow_open_invite": team.allow_open_invite,
            "type": "O" if team.allow_open_invite else "I",
        }
        return await self._save(team_id, values)

    async def _save(self, team_id: str, values: dict[str, Any]) -> dict[str, Any]:
        validate_team_fields(values)
        values["update_at"] = now_ms()
        async with self.db.write() as conn:
            await self.access.get_row(team_id, conn)
            await conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
            row = await self.access.get_row(team_id, conn)
            await self.events.publish(
                Event(
                    "update_team",
                    {"team": orjson.dumps(team_json(row, sanitize=True)).decode()},
                    Broadcast(team_id=team_id),
                ),
                conn,
            )
        return team_json(row)

    async def soft_delete(self, session: Session, team_id: str) -> None:
        """Marks the team deleted (members and channels stay, as in Mattermost)."""
        await self.access.require(session, team_id, "manage_team")
        now = now_ms()
        async with self.db.write() as conn:
            await conn.execute(
                update(teams).where(teams.c.id == team_id).values(delete_at=now, update_at=now)
            )
            row = await self.access.get_row(team_id, conn)
            await self.events.publish(
                Event(
                    "delete_team",
                    {"team": orjson.dumps(team_json(row, sanitize=True)).decode()},
                    Broadcast(),
                ),
                conn,
            )

    async def teams_for_user(self, session: Session, user_id: str) -> list[dict[str, Any]]:
        """The (not deleted) teams `user_id` is an active member of."""
        if user_id != session.user_id:
            await self.permissions.require(session, "read_other_users_teams")
        query = (
            select(teams)
            .join(team_members, team_members.c.team_id == teams.c.id)
            .where(
                and_(
                    team_members.c.user_id == user_id,
                    team_members.c.delete_at == 0,
                    teams.c.delete_at == 0,
                )
            )
            .order_by(teams.c.display_name, teams.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return await self.render(session, rows)
