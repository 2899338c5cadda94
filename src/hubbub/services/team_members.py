"""Team membership: join (which also joins the default channels), leave (which also leaves the
team's channels), member lists, roles, stats and unread counts.

A membership row is soft-deleted when a user leaves (`delete_at` set), as in Mattermost, so a
later join revives it. Channel memberships change in the same transaction and bump each channel's
`member_version`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Row, and_, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, forbidden, not_found
from hubbub.ids import now_ms
from hubbub.services.channel_model import (
    DEFAULT_CHANNELS,
    bump_member_version,
    compose_roles,
    insert_member,
    parse_scheme_roles,
)
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, team_members, teams, users


def team_member_json(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A TeamMember in Mattermost's shape (`roles` includes the scheme-implied roles)."""
    m = row._mapping if isinstance(row, Row) else row
    return {
        "team_id": m["team_id"],
        "user_id": m["user_id"],
        "roles": compose_roles(
            m["roles"], m["scheme_guest"], m["scheme_user"], m["scheme_admin"], "team"
        ),
        "delete_at": m["delete_at"],
        "scheme_guest": m["scheme_guest"],
        "scheme_user": m["scheme_user"],
        "scheme_admin": m["scheme_admin"],
        "explicit_roles": m["roles"],
    }


def member_missing() -> AppError:
    return not_found("team member", "app.team.get_member.missing.app_error")


class TeamMembers:
    """Who is in which team; `join` and `leave` are also the building blocks of other writes
    (team creation joins its creator) inside the caller's transaction."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        access: TeamAccess,
        permissions: Permissions,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.access = access
        self.permissions = permissions
        self.events = events

    # Transaction-level building blocks

    async def _any_row(self, conn: AsyncConnection, team_id: str, user_id: str) -> Row[Any] | None:
        query = select(team_members).where(
            team_members.c.team_id == team_id, team_members.c.user_id == user_id
        )
        return (await conn.execute(query)).first()

    async def join(
        self, conn: AsyncConnection, team_id: str, user_id: str, admin: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Adds the user to the team and its default channels: (TeamMember JSON, was it added).

        An active member is returned unchanged; a former member is revived.
        """
        existing = await self._any_row(conn, team_id, user_id)
        if existing is not None and existing.delete_at == 0:
            return team_member_json(existing), False
        await self._check_capacity(conn, team_id)
        values = {
            "roles": "",
            "delete_at": 0,
            "scheme_user": True,
            "scheme_admin": admin,
            "scheme_guest": False,
        }
        if existing is not None:
            await conn.execute(
                update(team_members)
                .where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
                .values(**values)
            )
        else:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(team_members).values(
                            team_id=team_id, user_id=user_id, create_at=now_ms(), **values
                        )
                    )
            except IntegrityError:
                # A concurrent join won; theirs is the membership.
                row = await self._any_row(conn, team_id, user_id)
                if row is None:
                    raise
                return team_member_json(row), False
        row = await self._any_row(conn, team_id, user_id)
        assert row is not None
        await self._join_default_channels(conn, team_id, user_id)
        await self.events.publish(
            Event(
                "added_to_team",
                {"team_id": team_id, "user_id": user_id},
                Broadcast(user_id=user_id),
            ),
            conn,
        )
        return team_member_json(row), True

    async def _check_capacity(self, conn: AsyncConnection, team_id: str) -> None:
        count = (
            await conn.execute(
                select(func.count())
                .select_from(team_members.join(users, users.c.id == team_members.c.user_id))
                .where(
                    team_members.c.team_id == team_id,
                    team_members.c.delete_at == 0,
                    users.c.delete_at == 0,
                )
            )
        ).scalar_one()
        if count >= self.settings.TeamSettings.MaxUsersPerTeam:
            raise AppError(
                "app.team.join_user_to_team.max_accounts.app_error",
                "This team has reached the maximum number of allowed accounts. Contact your "
                "System Administrator to set a higher limit.",
                400,
            )

    async def _join_default_channels(
        self, conn: AsyncConnection, team_id: str, user_id: str
    ) -> None:
        names = [name for name, _ in DEFAULT_CHANNELS]
        rows = (
            await conn.execute(
                select(channels.c.id).where(
                    channels.c.team_id == team_id,
                    channels.c.name.in_(names),
                    channels.c.delete_at == 0,
                )
            )
        ).all()
        for row in rows:
            _, added = await insert_member(conn, row.id, user_id)
            if added:
                await self.events.publish(
                    Event(
                        "user_added",
                        {"user_id": user_id, "team_id": team_id},
                        Broadcast(channel_id=row.id),
                    ),
                    conn,
                )

    async def leave(self, conn: AsyncConnection, team_id: str, user_id: str) -> None:
        """Soft-deletes the membership and removes the user from the team's channels."""
        await conn.execute(
            update(team_members)
            .where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
            .values(delete_at=now_ms(), roles="")
        )
        self.db.affects(conn, user_id)
        channel_ids = [
            r.channel_id
            for r in (
                await conn.execute(
                    select(channel_members.c.channel_id)
                    .join(channels, channels.c.id == channel_members.c.channel_id)
                    .where(channel_members.c.user_id == user_id, channels.c.team_id == team_id)
                )
            ).all()
        ]
        if channel_ids:
            await conn.execute(
                delete(channel_members).where(
                    channel_members.c.user_id == user_id,
                    channel_members.c.channel_id.in_(channel_ids),
                )
            )
            for channel_id in channel_ids:
                await bump_member_version(conn, channel_id)
        data = {"user_id": user_id, "team_id": team_id}
        await self.events.publish(Event("leave_team", data, Broadcast(team_id=team_id)), conn)
        # The user is no longer in the team's audience: tell them directly too.
        await self.events.publish(Event("leave_team", data, Broadcast(user_id=user_id)), conn)

    # Requests

    async def _require_can_add(self, session: Session, team: Row[Any], user_id: str) -> None:
        """Mattermost's rule: joining yourself needs `join_public_teams` (an open team) or
        `join_private_teams`; anyone holding `add_user_to_team` in the team (its members, by
        default) may add anyone."""
        can = self.permissions
        if user_id == session.user_id:
            joining = "join_public_teams" if team.allow_open_invite else "join_private_teams"
            if await can.has(session, joining):
                return
        if not await can.has_for_team(session, team.id, "add_user_to_team"):
            raise forbidden("add_user_to_team")

    async def add(self, session: Session, team_id: str, user_id: str) -> dict[str, Any]:
        """Adds a user: joining an open team yourself, or adding someone as a team member."""
        team = await self.access.get_row(team_id)
        await self._require_can_add(session, team, user_id)
        await self.users.get_row(user_id)
        async with self.db.write() as conn:
            member, _ = await self.join(conn, team_id, user_id)
        return member

    async def add_many(
        self, session: Session, team_id: str, user_ids: Sequence[str], graceful: bool
    ) -> list[dict[str, Any]]:
        """Adds several users (`add_user_to_team`). With `graceful`, each user gets its own
        result `{member, user_id, error}` instead of the first failure failing the request."""
        await self.access.require(session, team_id, "add_user_to_team")
        if not graceful:
            for user_id in user_ids:
                await self.users.get_row(user_id)
            async with self.db.write() as conn:
                return [(await self.join(conn, team_id, u))[0] for u in user_ids]
        results: list[dict[str, Any]] = []
        for user_id in user_ids:
            try:
                await self.users.get_row(user_id)
                async with self.db.write() as conn:
                    member, _ = await self.join(conn, team_id, user_id)
                results.append({"member": member, "user_id": user_id, "error": None})
            except AppError as error:
                body = error.to_body("")
                body.pop("request_id", None)
                results.append({"member": None, "user_id": user_id, "error": body})
        return results

    async def remove(self, session: Session, team_id: str, user_id: str) -> None:
        """Leave (yourself) or remove someone (`remove_user_from_team`: team admins)."""
        await self.access.get_row(team_id)
        if user_id != session.user_id:
            await self.access.require(session, team_id, "remove_user_from_team")
        async with self.db.write() as conn:
            row = await self._any_row(conn, team_id, user_id)
            if row is None or row.delete_at:
                raise AppError(
                    "api.team.remove_user_from_team.missing.app_error",
                    "The user does not appear to be part of this team.",
                    400,
                )
            await self.leave(conn, team_id, user_id)

    async def page(
        self, session: Session, team_id: str, page: int, per_page: int
    ) -> list[dict[str, Any]]:
        await self.access.require_member(session, team_id)
        query = (
            select(team_members)
            .where(team_members.c.team_id == team_id, team_members.c.delete_at == 0)
            .order_by(team_members.c.user_id)
            .offset(page * per_page)
            .limit(per_page)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [team_member_json(r) for r in rows]

    async def get(self, session: Session, team_id: str, user_id: str) -> dict[str, Any]:
        await self.access.require_member(session, team_id)
        async with self.db.read() as conn:
            row = await self._any_row(conn, team_id, user_id)
        if row is None:
            raise member_missing()
        return team_member_json(row)

    async def by_ids(
        self, session: Session, team_id: str, user_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        await self.access.require_member(session, team_id)
        query = select(team_members).where(
            team_members.c.team_id == team_id, team_members.c.user_id.in_(list(user_ids))
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(team_members.c.user_id))).all()
        return [team_member_json(r) for r in rows]

    async def for_user(self, session: Session, user_id: str) -> list[dict[str, Any]]:
        """The user's active memberships in teams that are not deleted."""
        await self.permissions.require_user(session, user_id)
        query = (
            select(team_members)
            .join(teams, teams.c.id == team_members.c.team_id)
            .where(
                team_members.c.user_id == user_id,
                team_members.c.delete_at == 0,
                teams.c.delete_at == 0,
            )
            .order_by(team_members.c.team_id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [team_member_json(r) for r in rows]

    async def unread_for_user(
        self, session: Session, user_id: str, exclude_team: str = ""
    ) -> list[dict[str, Any]]:
        """Per team: messages and mentions not yet viewed, summed over the user's channels."""
        await self.permissions.require_user(session, user_id)
        memberships = await self.for_user(session, user_id)
        team_ids = [m["team_id"] for m in memberships if m["team_id"] != exclude_team]
        if not team_ids:
            return []
        cm = channel_members.c
        query = (
            select(
                channels.c.team_id,
                func.sum(channels.c.total_msg_count - cm.msg_count).label("msg_count"),
                func.sum(channels.c.total_msg_count_root - cm.msg_count_root).label("msg_root"),
                func.sum(cm.mention_count).label("mention_count"),
                func.sum(cm.mention_count_root).label("mention_root"),
                func.sum(cm.urgent_mention_count).label("urgent"),
            )
            .join(channels, channels.c.id == cm.channel_id)
            .where(
                and_(
                    cm.user_id == user_id,
                    channels.c.team_id.in_(team_ids),
                    channels.c.delete_at == 0,
                )
            )
            .group_by(channels.c.team_id)
        )
        async with self.db.read() as conn:
            sums = {r.team_id: r for r in (await conn.execute(query)).all()}
        out = []
        for team_id in team_ids:
            row = sums.get(team_id)
            out.append(
                {
                    "team_id": team_id,
                    "msg_count": int(row.msg_count or 0) if row else 0,
                    "mention_count": int(row.mention_count or 0) if row else 0,
                    "mention_count_root": int(row.mention_root or 0) if row else 0,
                    "msg_count_root": int(row.msg_root or 0) if row else 0,
                    "urgent_mention_count": int(row.urgent or 0) if row else 0,
                    "thread_count": 0,
                    "thread_mention_count": 0,
                    "thread_urgent_mention_count": 0,
                }
            )
        return out

    async def update_roles(self, session: Session, team_id: str, user_id: str, roles: str) -> None:
        """Sets `team_user`/`team_admin` (team or system admins only)."""
        await self.access.require(session, team_id, "manage_team_roles")
        scheme_user, scheme_admin = parse_scheme_roles(roles, "team")
        async with self.db.write() as conn:
            row = await self._any_row(conn, team_id, user_id)
            if row is None or row.delete_at:
                raise member_missing()
            where = and_(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
            await conn.execute(
                update(team_members)
                .where(where)
                .values(roles="", scheme_user=scheme_user, scheme_admin=scheme_admin)
            )
            self.db.affects(conn, user_id)
            row = await self._any_row(conn, team_id, user_id)
            assert row is not None
            await self.events.publish(
                Event(
                    "memberrole_updated",
                    {"member": orjson.dumps(team_member_json(row)).decode()},
                    Broadcast(user_id=user_id),
                ),
                conn,
            )

    async def stats(self, session: Session, team_id: str) -> dict[str, Any]:
        await self.access.require_member(session, team_id)
        query = (
            select(
                func.count().label("total"),
                func.coalesce(func.sum(case((users.c.delete_at == 0, 1), else_=0)), 0).label(
                    "active"
                ),
            )
            .select_from(team_members.join(users, users.c.id == team_members.c.user_id))
            .where(team_members.c.team_id == team_id, team_members.c.delete_at == 0)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).one()
        return {
            "team_id": team_id,
            "total_member_count": int(row.total),
            "active_member_count": int(row.active),
        }
