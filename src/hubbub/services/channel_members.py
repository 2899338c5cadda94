"""Channel membership: add, remove, roles, notification preferences, "viewed" marks, unread
counts and the member lists clients load.

Every add or remove bumps the channel's `member_version` in the same transaction (see
`channel_model.insert_member`), and events are published inside that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.batching import Batcher
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError, forbidden, not_found
from hubbub.ids import now_ms
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_model import (
    TOWN_SQUARE,
    bump_member_version,
    channel_member_json,
    get_member_row,
    insert_member,
    parse_scheme_roles,
    validate_notify_props,
)
from hubbub.services.permissions import Permissions, channel_permission
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, team_members, teams

# One member's "viewed" mark (executed for a whole batch of them: `ChannelMembers._view_many`).
_VIEW_UPDATE = (
    update(channel_members)
    .where(
        channel_members.c.channel_id == bindparam("b_channel"),
        channel_members.c.user_id == bindparam("b_user"),
    )
    .values(
        last_viewed_at=bindparam("b_at"),
        msg_count=bindparam("b_msgs"),
        msg_count_root=bindparam("b_root_msgs"),
        mention_count=0,
        mention_count_root=0,
        urgent_mention_count=0,
        last_update_at=bindparam("b_at"),
    )
)


def member_missing() -> AppError:
    return not_found("channel member", "app.channel.get_member.missing.app_error")


class ChannelMembers:
    """Who is in which channel, and each member's read marks and preferences."""

    def __init__(
        self,
        db: Database,
        users: UsersService,
        access: ChannelAccess,
        permissions: Permissions,
        teams: TeamAccess,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.users = users
        self.access = access
        self.permissions = permissions
        self.teams = teams
        self.events = events
        self._views: Batcher[tuple[str, str], int, dict[str, int]] = Batcher(self._view_many, {})

    # Adding and removing

    async def add(
        self, session: Session, channel_id: str, user_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Adds users to a public or private channel; existing members are returned unchanged.

        Who may (`_require_can_add`): with the default roles, a team member joins a public
        channel, and channel members and team admins add others. Each added user must be in the
        team.
        """
        channel = await self.access.get_row(channel_id)
        if channel.type not in ("O", "P"):
            raise AppError(
                "api.channel.add_user_to_channel.type.app_error",
                "Can not add user to this channel type.",
                400,
            )
        await self._require_can_add(session, channel, user_ids)
        if channel.delete_at:
            raise AppError(
                "api.channel.add_user_to_channel.deleted.app_error",
                "The channel has been archived or deleted.",
                400,
            )
        for user_id in user_ids:
            await self.users.get_row(user_id)
        out = []
        async with self.db.write() as conn:
            for user_id in user_ids:
                await self._require_team_member(conn, channel.team_id, user_id)
                member, added = await insert_member(conn, channel_id, user_id)
                if added:
                    await self.events.publish(
                        Event(
                            "user_added",
                            {"user_id": user_id, "team_id": channel.team_id},
                            Broadcast(channel_id=channel_id),
                        ),
                        conn,
                    )
                out.append(member)
        return out

    async def _require_can_add(
        self, session: Session, channel: Row[Any], user_ids: Sequence[str]
    ) -> None:
        """Mattermost's rule: joining a public channel yourself needs `join_public_channels` on
        its team; adding anyone else (or yourself to a private channel) needs
        `manage_public_channel_members` / `manage_private_channel_members` on the channel."""
        manage = channel_permission(
            channel.type, "manage_public_channel_members", "manage_private_channel_members"
        )
        if channel.type == "O" and set(user_ids) == {session.user_id}:
            if await self.access.member_row(session.user_id, channel.id) is None:
                await self.teams.require(session, channel.team_id, "join_public_channels")
            return
        await self.access.require(session, channel, manage)

    @staticmethod
    async def _require_team_member(conn: AsyncConnection, team_id: str, user_id: str) -> None:
        row = (
            await conn.execute(
                select(team_members.c.delete_at).where(
                    team_members.c.team_id == team_id, team_members.c.user_id == user_id
                )
            )
        ).first()
        if row is None:
            raise not_found("team member", "app.team.get_member.missing.app_error")
        if row.delete_at:
            raise AppError(
                "api.channel.add_user.to.channel.failed.deleted.app_error",
                "Failed to add user to channel because they have been removed from the team.",
                400,
            )

    async def remove(self, session: Session, channel_id: str, user_id: str) -> None:
        """Leave (yourself) or remove someone (channel members, team admins, system admins)."""
        channel = await self.access.get_row(channel_id)
        if channel.type not in ("O", "P"):
            raise AppError(
                "api.channel.remove_channel_member.type.app_error",
                "Can not remove user from a channel of this type.",
                400,
            )
        if user_id != session.user_id:
            await self.access.require(
                session,
                channel,
                channel_permission(
                    channel.type, "manage_public_channel_members", "manage_private_channel_members"
                ),
            )
        if channel.name == TOWN_SQUARE:
            raise AppError(
                "api.channel.remove.default.app_error",
                f"Unable to remove user from the default channel {TOWN_SQUARE}.",
                400,
            )
        async with self.db.write() as conn:
            if await get_member_row(conn, channel_id, user_id) is None:
                raise member_missing()
            await conn.execute(
                delete(channel_members).where(
                    channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
                )
            )
            await bump_member_version(conn, channel_id)
            self.db.affects(conn, user_id)
            data = {"remover_id": session.user_id, "user_id": user_id, "channel_id": channel_id}
            await self.events.publish(
                Event("user_removed", data, Broadcast(channel_id=channel_id)), conn
            )
            # The removed user is no longer in the channel's audience: tell them directly.
            await self.events.publish(
                Event("user_removed", dict(data), Broadcast(user_id=user_id)), conn
            )

    # Per-member settings

    async def update_roles(
        self, session: Session, channel_id: str, user_id: str, roles: str
    ) -> None:
        """Sets `channel_user`/`channel_admin` (`manage_channel_roles`: channel admins, team
        admins, system admins)."""
        channel = await self.access.get_row(channel_id)
        await self.access.require(session, channel, "manage_channel_roles")
        scheme_user, scheme_admin = parse_scheme_roles(roles, "channel")
        await self._update_member(
            channel_id,
            user_id,
            {"roles": "", "scheme_user": scheme_user, "scheme_admin": scheme_admin},
        )

    async def update_notify_props(
        self, session: Session, channel_id: str, user_id: str, props: Mapping[str, Any]
    ) -> None:
        """Merges the given notification preferences into the member's (the user or an admin)."""
        await self.permissions.require_user(session, user_id)
        await self.access.get_row(channel_id)
        clean = validate_notify_props(props)
        current = await self.access.member_row(user_id, channel_id)
        if current is None:
            raise member_missing()
        merged = {**(current.notify_props or {}), **clean}
        await self._update_member(channel_id, user_id, {"notify_props": merged})

    async def _update_member(self, channel_id: str, user_id: str, values: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            if await get_member_row(conn, channel_id, user_id) is None:
                raise member_missing()
            await conn.execute(
                update(channel_members)
                .where(
                    channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
                )
                .values(**values, last_update_at=now_ms())
            )
            self.db.affects(conn, user_id)
            row = await get_member_row(conn, channel_id, user_id)
            assert row is not None
            await self.events.publish(
                Event(
                    "channel_member_updated",
                    {"channelMember": orjson.dumps(channel_member_json(row)).decode()},
                    Broadcast(user_id=user_id),
                ),
                conn,
            )

    async def view(self, session: Session, user_id: str, channel_id: str) -> dict[str, int]:
        """Marks the channel read for the user: `{channel_id: last_viewed_at}`, or `{}` when the
        user is not a member (or `channel_id` is empty: all channels lost focus).

        Clients send this on every channel switch, so it is the commonest write of all: the
        marks of every request that arrives while the previous batch is being written go
        together into one transaction (`_view_many`), instead of one transaction each queued on
        SQLite's single writer (at 750 realistic users those queued views were every 503 the
        node answered; issue 17)."""
        await self.permissions.require_user(session, user_id)
        if not channel_id:
            return {}
        times = await self._views.submit((user_id, channel_id), now_ms())
        if times:
            await self.db.note_outside_write()
        return times

    async def _view_many(
        self, batch: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], dict[str, int]]:
        """Writes a batch of "viewed" marks, `{(user_id, channel_id): viewed_at}`, in one
        transaction: the member's counts catch up with the channel's and its mentions reset; one
        `multiple_channels_viewed` per user names every channel of theirs in the batch. A pair
        whose channel or membership does not exist is left out (the caller gets `{}`)."""
        channel_ids = sorted({c for _, c in batch})
        user_ids = sorted({u for u, _ in batch})
        viewed: dict[str, dict[str, int]] = {}
        async with self.db.write() as conn:
            counts = {
                r.id: r
                for r in await conn.execute(
                    select(
                        channels.c.id, channels.c.total_msg_count, channels.c.total_msg_count_root
                    ).where(channels.c.id.in_(channel_ids))
                )
            }
            members = {
                (r.user_id, r.channel_id)
                for r in await conn.execute(
                    select(channel_members.c.user_id, channel_members.c.channel_id).where(
                        channel_members.c.channel_id.in_(channel_ids),
                        channel_members.c.user_id.in_(user_ids),
                    )
                )
            }
            params: list[dict[str, Any]] = []
            for (user_id, channel_id), at in batch.items():
                channel = counts.get(channel_id)
                if channel is None or (user_id, channel_id) not in members:
                    continue
                params.append(
                    {
                        "b_channel": channel_id,
                        "b_user": user_id,
                        "b_at": at,
                        "b_msgs": channel.total_msg_count,
                        "b_root_msgs": channel.total_msg_count_root,
                    }
                )
                viewed.setdefault(user_id, {})[channel_id] = at
            if params:
                await conn.execute(_VIEW_UPDATE, params)
            for user_id, times in viewed.items():
                await self.events.publish(
                    Event(
                        "multiple_channels_viewed",
                        {"channel_times": times},
                        Broadcast(user_id=user_id),
                    ),
                    conn,
                )
        return {(u, c): {c: at} for u, times in viewed.items() for c, at in times.items()}

    # Reads

    async def page(
        self, session: Session, channel_id: str, page: int, per_page: int
    ) -> list[dict[str, Any]]:
        await self.access.require_read(session, channel_id)
        query = (
            select(channel_members)
            .where(channel_members.c.channel_id == channel_id)
            .order_by(channel_members.c.user_id)
            .offset(page * per_page)
            .limit(per_page)
        )
        return await self._rows(query)

    async def get(self, session: Session, channel_id: str, user_id: str) -> dict[str, Any]:
        await self.access.require_read(session, channel_id)
        row = await self.access.member_row(user_id, channel_id)
        if row is None:
            raise member_missing()
        return channel_member_json(row)

    async def by_ids(
        self, session: Session, channel_id: str, user_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        await self.access.require_read(session, channel_id)
        query = (
            select(channel_members)
            .where(
                channel_members.c.channel_id == channel_id,
                channel_members.c.user_id.in_(list(user_ids)),
            )
            .order_by(channel_members.c.user_id)
        )
        return await self._rows(query)

    async def for_user_in_team(
        self, session: Session, user_id: str, team_id: str
    ) -> list[dict[str, Any]]:
        """The user's memberships in the team's channels and in their direct and group channels."""
        await self.permissions.require_user(session, user_id)
        await self.teams.require_member(session, team_id)
        query = (
            select(channel_members)
            .join(channels, channels.c.id == channel_members.c.channel_id)
            .where(channel_members.c.user_id == user_id, channels.c.team_id.in_([team_id, ""]))
            .order_by(channel_members.c.channel_id)
        )
        return await self._rows(query)

    async def for_user(
        self, session: Session, user_id: str, page: int, per_page: int
    ) -> list[dict[str, Any]]:
        """All the user's memberships, each with its team's `team_display_name`, `team_name` and
        `team_update_at` (empty for direct and group channels)."""
        await self.permissions.require_user(session, user_id)
        query = (
            select(
                channel_members,
                teams.c.display_name.label("team_display_name"),
                teams.c.name.label("team_name"),
                teams.c.update_at.label("team_update_at"),
            )
            .join(channels, channels.c.id == channel_members.c.channel_id)
            .outerjoin(teams, teams.c.id == channels.c.team_id)
            .where(channel_members.c.user_id == user_id)
            .order_by(channel_members.c.channel_id)
            .offset(page * per_page)
            .limit(per_page)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                **channel_member_json(r),
                "team_display_name": r.team_display_name or "",
                "team_name": r.team_name or "",
                "team_update_at": r.team_update_at or 0,
            }
            for r in rows
        ]

    async def unread(self, session: Session, user_id: str, channel_id: str) -> dict[str, Any]:
        """Mattermost's ChannelUnread for one member."""
        await self.permissions.require_user(session, user_id)
        channel = await self.access.get_row(channel_id)
        if not await self.access.can_read(session, channel):
            raise forbidden("read_channel_content")
        member = await self.access.member_row(user_id, channel_id)
        if member is None:
            raise member_missing()
        return {
            "team_id": channel.team_id,
            "channel_id": channel_id,
            "msg_count": max(0, channel.total_msg_count - member.msg_count),
            "mention_count": member.mention_count,
            "mention_count_root": member.mention_count_root,
            "urgent_mention_count": member.urgent_mention_count,
            "msg_count_root": max(0, channel.total_msg_count_root - member.msg_count_root),
            "notify_props": channel_member_json(member)["notify_props"],
        }

    async def _rows(self, query: Any) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return [channel_member_json(r) for r in (await conn.execute(query)).all()]
