"""Teams: creation (with the default channels), lookup, patch and soft delete, and the checks other
services use to ask whether someone belongs to a team. Membership lives in `team_members.py`.

Who may do what follows Mattermost's default permission scheme: system admins everything, team
admins manage their team, members view it, anyone views an open team.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Row, and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, forbidden, not_found
from hubbub.ids import new_id, now_ms
from hubbub.services.channel_model import DEFAULT_CHANNELS, body_text, new_channel_row
from hubbub.services.session import Session
from hubbub.services.team_members import TeamMembers, require_self_or_admin
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import channels, team_members, teams

TEAM_NAME_MIN = 2
TEAM_NAME_MAX = 64
TEAM_DISPLAY_NAME_MAX = 64
TEAM_NAME_RE = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")
# Mattermost refuses team names that *start* with any of these (`IsReservedTeamName`).
RESERVED_TEAM_NAMES = (
    "admin",
    "api",
    "channel",
    "claim",
    "error",
    "files",
    "help",
    "landing",
    "login",
    "mfa",
    "oauth",
    "plug",
    "plugins",
    "post",
    "signup",
    "boards",
    "playbooks",
)


def team_json(row: Row[Any] | Mapping[str, Any], sanitize: bool = False) -> dict[str, Any]:
    """A Team in Mattermost's shape; `sanitize` blanks `email` and `invite_id` as `Sanitize()`."""
    t = row._mapping if isinstance(row, Row) else row
    data: dict[str, Any] = {
        "id": t["id"],
        "create_at": t["create_at"],
        "update_at": t["update_at"],
        "delete_at": t["delete_at"],
        "display_name": t["display_name"],
        "name": t["name"],
        "description": t["description"],
        "email": "" if sanitize else t["email"],
        "type": t["type"],
        "company_name": t["company_name"],
        "allowed_domains": t["allowed_domains"],
        "invite_id": "" if sanitize else t["invite_id"],
        "allow_open_invite": t["allow_open_invite"],
        "scheme_id": None,
        "group_constrained": None,
        "policy_id": None,
        "cloud_limits_archived": False,
    }
    if t["last_team_icon_update"]:
        data["last_team_icon_update"] = t["last_team_icon_update"]
    return data


def validate_team_name(name: str) -> None:
    if len(name) > TEAM_NAME_MAX:
        raise AppError("model.team.is_valid.url.app_error", "Invalid URL Identifier.", 400)
    if name.startswith(RESERVED_TEAM_NAMES):
        raise AppError(
            "model.team.is_valid.reserved.app_error", "This URL is unavailable. Try another.", 400
        )
    if len(name) < TEAM_NAME_MIN or not TEAM_NAME_RE.match(name):
        raise AppError(
            "model.team.is_valid.characters.app_error",
            "Name must be 2 or more lowercase alphanumeric characters.",
            400,
        )


def validate_team_fields(values: Mapping[str, Any]) -> None:
    """Mattermost's `Team.IsValid` for the fields a client can set."""
    display_name = values.get("display_name")
    if display_name is not None and (not display_name or len(display_name) > TEAM_DISPLAY_NAME_MAX):
        raise AppError("model.team.is_valid.name.app_error", "Invalid name.", 400)
    if len(values.get("description", "")) > 255:
        raise AppError("model.team.is_valid.description.app_error", "Invalid description.", 400)
    if len(values.get("company_name", "")) > 64:
        raise AppError("model.team.is_valid.company.app_error", "Invalid company name.", 400)
    if len(values.get("allowed_domains", "")) > 1000:
        raise AppError("model.team.is_valid.domains.app_error", "Invalid allowed domains.", 400)
    if "name" in values:
        validate_team_name(values["name"])
    if values.get("type", "O") not in ("O", "I"):
        raise AppError("model.team.is_valid.type.app_error", "Invalid type.", 400)


def _flag(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise AppError(
            "api.context.invalid_body_param.app_error", f"Invalid {key} in request body.", 400
        )
    return value


class TeamsService:
    """Teams and the team-level permission checks; `members` manages who is in a team."""

    def __init__(
        self, db: Database, settings: Settings, users: UsersService, events: EventPublisher
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.users = users
        self.members = TeamMembers(db, settings, users, events, self)

    # Lookups and checks used by other services

    async def get_row(self, team_id: str, conn: AsyncConnection | None = None) -> Row[Any]:
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
        row = None
        if len(name) <= TEAM_NAME_MAX and "\x00" not in name:
            async with self.db.read() as conn:
                row = (await conn.execute(select(teams).where(teams.c.name == name))).first()
        if row is None:
            raise not_found("team", "app.team.get_by_name.missing.app_error")
        return row

    async def exists(self, name: str) -> bool:
        if len(name) > TEAM_NAME_MAX or "\x00" in name:
            return False
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(teams.c.id).where(teams.c.name == name, teams.c.delete_at == 0)
                )
            ).first()
        return row is not None

    async def is_member(self, user_id: str, team_id: str) -> bool:
        """True if `user_id` is an active (not removed) member of the team."""
        return await self.member_row(user_id, team_id) is not None

    async def is_admin(self, user_id: str, team_id: str) -> bool:
        """True if `user_id` is an active member of the team with the team_admin role."""
        row = await self.member_row(user_id, team_id)
        return row is not None and bool(row.scheme_admin)

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

    async def require_member(self, session: Session, team_id: str) -> dict[str, Any]:
        """The team's JSON if the caller is a member (or a system admin); 404 if the team does not
        exist, 403 `api.context.permissions.app_error` otherwise."""
        row = await self.get_row(team_id)
        if not session.is_system_admin and not await self.is_member(session.user_id, team_id):
            raise forbidden("view_team")
        return team_json(row)

    async def require_view(self, session: Session, row: Row[Any]) -> None:
        """Mattermost's `getTeam` rule: an open team is visible to everyone, others to members."""
        if row.allow_open_invite and row.type == "O":
            return
        if session.is_system_admin or await self.is_member(session.user_id, row.id):
            return
        raise forbidden("view_team")

    async def require_manage(self, session: Session, team_id: str) -> Row[Any]:
        """The team row if the caller is a team admin or a system admin (`manage_team`)."""
        row = await self.get_row(team_id)
        if not session.is_system_admin and not await self.is_admin(session.user_id, team_id):
            raise forbidden("manage_team")
        return row

    async def admin_team_ids(self, user_id: str) -> set[str]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(team_members.c.team_id).where(
                        team_members.c.user_id == user_id,
                        team_members.c.delete_at == 0,
                        team_members.c.scheme_admin,
                    )
                )
            ).all()
        return {r.team_id for r in rows}

    async def render(self, session: Session, rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
        """Team JSON for the caller: sanitized where the caller may not manage the team."""
        rows = list(rows)
        if session.is_system_admin:
            return [team_json(r) for r in rows]
        managed = await self.admin_team_ids(session.user_id) if rows else set()
        return [team_json(r, sanitize=r.id not in managed) for r in rows]

    async def render_one(self, session: Session, row: Row[Any]) -> dict[str, Any]:
        return (await self.render(session, [row]))[0]

    # Team lifecycle

    async def create(self, session: Session, data: Mapping[str, Any]) -> dict[str, Any]:
        """Creates a team with its default channels; the creator joins as team admin."""
        type_ = body_text(data, "type") or ""
        values: dict[str, Any] = {
            "name": body_text(data, "name"),
            "display_name": body_text(data, "display_name"),
            "description": body_text(data, "description"),
            "company_name": body_text(data, "company_name"),
            "allowed_domains": body_text(data, "allowed_domains"),
            "type": type_,
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
            "allow_open_invite": type_ == "O",
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
        """System admins see every team; others the teams that allow open invites."""
        query = select(teams).order_by(teams.c.display_name, teams.c.id)
        if not session.is_system_admin:
            query = query.where(teams.c.allow_open_invite)
        if not (include_deleted and session.is_system_admin):
            query = query.where(teams.c.delete_at == 0)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.offset(page * per_page).limit(per_page))).all()
        return await self.render(session, rows)

    async def get_for(self, session: Session, team_id: str) -> dict[str, Any]:
        row = await self.get_row(team_id)
        await self.require_view(session, row)
        return await self.render_one(session, row)

    async def get_by_name_for(self, session: Session, name: str) -> dict[str, Any]:
        row = await self.get_by_name_row(name)
        await self.require_view(session, row)
        return await self.render_one(session, row)

    async def patch(
        self, session: Session, team_id: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Applies a TeamPatch (only the fields given); `allow_open_invite` also sets `type`."""
        await self.require_manage(session, team_id)
        values: dict[str, Any] = {}
        for key in ("display_name", "description", "company_name", "allowed_domains", "invite_id"):
            value = body_text(patch, key, None)
            if value is not None:
                values[key] = value
        open_invite = _flag(patch, "allow_open_invite")
        if open_invite is not None:
            values["allow_open_invite"] = open_invite
            values["type"] = "O" if open_invite else "I"
            if not open_invite:
                values["invite_id"] = new_id()
        return await self._save(team_id, values)

    async def update(
        self, session: Session, team_id: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replaces the updatable fields; omitted ones become empty, as in Mattermost."""
        if data.get("id") != team_id:
            raise AppError("api.context.invalid_param.app_error", "Invalid id parameter.", 400)
        await self.require_manage(session, team_id)
        values: dict[str, Any] = {
            "display_name": body_text(data, "display_name"),
            "description": body_text(data, "description"),
            "company_name": body_text(data, "company_name"),
            "allowed_domains": body_text(data, "allowed_domains"),
        }
        open_invite = _flag(data, "allow_open_invite") or False
        values["allow_open_invite"] = open_invite
        values["type"] = "O" if open_invite else "I"
        return await self._save(team_id, values)

    async def _save(self, team_id: str, values: dict[str, Any]) -> dict[str, Any]:
        validate_team_fields(values)
        values["update_at"] = now_ms()
        async with self.db.write() as conn:
            await self.get_row(team_id, conn)
            await conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
            row = await self.get_row(team_id, conn)
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
        await self.require_manage(session, team_id)
        now = now_ms()
        async with self.db.write() as conn:
            await conn.execute(
                update(teams).where(teams.c.id == team_id).values(delete_at=now, update_at=now)
            )
            row = await self.get_row(team_id, conn)
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
        require_self_or_admin(session, user_id)
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
