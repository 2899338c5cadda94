"""Channels (public, private, direct, group): creation, edit, archive and restore.

Its peers, each built in the composition root: `ChannelAccess` (channel_access.py) holds the
lookups and permission checks every channel-related service shares, `ChannelMembers`
(channel_members.py) who is in a channel, `ChannelDirectory` (channel_lists.py) the lists clients
load. The typed inputs (`NewChannel`, `ChannelPatch`, `ChannelUpdate`) are built by the routes
from the request body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, bad_param, forbidden
from hubbub.ids import is_valid_id, now_ms
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_model import (
    GROUP_MAX_USERS,
    GROUP_MIN_USERS,
    TOWN_SQUARE,
    channel_json,
    dm_name,
    group_name,
    insert_member,
    new_channel_row,
    validate_channel_fields,
)
from hubbub.services.permissions import Permissions, channel_permission
from hubbub.services.session import Session
from hubbub.services.team_access import TeamAccess
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import channels


@dataclass(frozen=True, slots=True)
class NewChannel:
    """`POST /channels`: a public (`O`) or private (`P`) channel in `team_id`."""

    team_id: str
    type: str = ""
    name: str = ""
    display_name: str = ""
    header: str = ""
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class ChannelPatch:
    """`PUT /channels/{id}/patch`: `None` leaves a field as it is."""

    name: str | None = None
    display_name: str | None = None
    header: str | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelUpdate:
    """`PUT /channels/{id}`: `header` and `purpose` are replaced (blank when omitted); an empty
    `name`, `display_name` or `type` keeps the current one."""

    header: str = ""
    purpose: str = ""
    name: str = ""
    display_name: str = ""
    type: str = ""


def _archived(action: str = "update_channel") -> AppError:
    return AppError(
        f"api.channel.{action}.deleted.app_error", "The channel has been archived or deleted.", 400
    )


class ChannelsService:
    """The channel lifecycle: create, get-or-create direct and group channels, edit, archive."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        access: ChannelAccess,
        permissions: Permissions,
        teams: TeamAccess,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.users = users
        self.access = access
        self.permissions = permissions
        self.teams = teams

    # Creation

    async def create(self, session: Session, new: NewChannel) -> dict[str, Any]:
        """Creates a public or private channel; the creator joins as channel admin."""
        team_id, type_ = new.team_id, new.type
        if type_ in ("D", "G"):
            raise AppError(
                "api.channel.create_channel.direct_channel.app_error",
                "Must use createDirectChannel API service for direct message channel creation.",
                400,
            )
        if type_ not in ("O", "P"):
            raise AppError("model.channel.is_valid.type.app_error", "Invalid type.", 400)
        await self.teams.require(
            session,
            team_id,
            channel_permission(type_, "create_public_channel", "create_private_channel"),
        )
        validate_channel_fields(new.name, new.display_name, new.header, new.purpose)
        row = new_channel_row(
            team_id=team_id,
            type_=type_,
            name=new.name,
            display_name=new.display_name,
            creator_id=session.user_id,
            header=new.header,
            purpose=new.purpose,
        )
        async with self.db.write() as conn:
            await self._check_channel_limit(conn, team_id)
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(channels).values(**row))
            except IntegrityError:
                raise AppError(
                    "store.sql_channel.save_channel.exists.app_error",
                    "A channel with that name already exists on the same team.",
                    400,
                ) from None
            await insert_member(conn, row["id"], session.user_id, admin=True)
            await self.events.publish(
                Event(
                    "channel_created",
                    {"channel_id": row["id"], "team_id": team_id},
                    Broadcast(user_id=session.user_id),
                ),
                conn,
            )
            stored = await self.access.get_row(row["id"], conn)
        return channel_json(stored)

    async def _check_channel_limit(self, conn: AsyncConnection, team_id: str) -> None:
        count = (
            await conn.execute(
                select(func.count())
                .select_from(channels)
                .where(
                    channels.c.team_id == team_id,
                    channels.c.delete_at == 0,
                    channels.c.type.in_(["O", "P"]),
                )
            )
        ).scalar_one()
        if count >= self.settings.TeamSettings.MaxChannelsPerTeam:
            raise AppError(
                "api.channel.create_channel.max_channel_limit.app_error",
                "Unable to create more than "
                f"{self.settings.TeamSettings.MaxChannelsPerTeam} channels for current team.",
                400,
            )

    async def create_direct(self, session: Session, user_ids: Sequence[str]) -> dict[str, Any]:
        """Gets or creates the direct channel of two users (the same id twice: a self-DM)."""
        if len(user_ids) != 2:
            raise bad_param("user_ids")
        for user_id in user_ids:
            if not is_valid_id(user_id):
                raise bad_param("user_id")
        can = self.permissions
        await can.require(session, "create_direct_channel")
        if session.user_id not in user_ids:
            await can.require(session, "manage_system")
        found = await self.users.get_many(user_ids)
        if len(found) != len(set(user_ids)):
            raise AppError(
                "api.channel.create_direct_channel.invalid_user.app_error",
                "Invalid user ID for direct channel creation.",
                400,
            )
        first, second = user_ids
        creator = session.user_id if session.user_id in user_ids else first
        teammate = second if creator == first else first
        name = dm_name(first, second)
        return await self._get_or_create_private(
            name=name,
            type_="D",
            display_name="",
            creator_id=creator,
            member_ids=sorted({first, second}),
            event=Event(
                "direct_added", {"creator_id": creator, "teammate_id": teammate}, Broadcast()
            ),
        )

    async def create_group(self, session: Session, user_ids: Sequence[str]) -> dict[str, Any]:
        """Gets or creates the group channel of 3 to 8 users (the caller is always included)."""
        await self.permissions.require(session, "create_group_channel")
        for user_id in user_ids:
            if not is_valid_id(user_id):
                raise bad_param("user_ids")
        ids = list(dict.fromkeys([*user_ids, session.user_id]))
        if not GROUP_MIN_USERS <= len(ids) <= GROUP_MAX_USERS:
            raise AppError(
                "api.channel.create_group.bad_size.app_error",
                "Group message channels must contain at least 3 and no more than 8 users.",
                400,
            )
        found = await self.users.get_many(ids)
        if len(found) != len(ids):
            raise AppError(
                "api.channel.create_group.bad_user.app_error",
                "One of the provided users does not exist.",
                400,
            )
        display_name = ", ".join(sorted(u["username"] for u in found))
        if len(display_name) > 64:
            display_name = display_name[:61] + "..."
        return await self._get_or_create_private(
            name=group_name(ids),
            type_="G",
            display_name=display_name,
            creator_id=session.user_id,
            member_ids=ids,
            event=Event("group_added", {"teammate_ids": orjson.dumps(ids).decode()}, Broadcast()),
        )

    async def _find_teamless(self, conn: AsyncConnection, name: str) -> Row[Any] | None:
        query = select(channels).where(channels.c.team_id == "", channels.c.name == name)
        return (await conn.execute(query)).first()

    async def _get_or_create_private(
        self,
        *,
        name: str,
        type_: str,
        display_name: str,
        creator_id: str,
        member_ids: Sequence[str],
        event: Event,
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            existing = await self._find_teamless(conn, name)
            if existing is not None:
                return channel_json(existing)
            row = new_channel_row(
                team_id="", type_=type_, name=name, display_name=display_name, creator_id=creator_id
            )
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(channels).values(**row))
            except IntegrityError:
                # Created concurrently by the other party: theirs is the channel.
                existing = await self._find_teamless(conn, name)
                if existing is None:
                    raise
                return channel_json(existing)
            for user_id in member_ids:
                await insert_member(conn, row["id"], user_id)
            await self.events.publish(
                Event(event.event, event.data, Broadcast(channel_id=row["id"])), conn
            )
            stored = await self.access.get_row(row["id"], conn)
        return channel_json(stored)

    # Editing

    async def patch(self, session: Session, channel_id: str, patch: ChannelPatch) -> dict[str, Any]:
        """Applies a ChannelPatch: only the fields given (`name`, `display_name`, `header`,
        `purpose`); direct and group channels only take `header` and `purpose`."""
        given = {
            "name": patch.name,
            "display_name": patch.display_name,
            "header": patch.header,
            "purpose": patch.purpose,
        }
        values = {k: v for k, v in given.items() if v is not None}
        return await self._edit(session, channel_id, values, full=False)

    async def update(
        self, session: Session, channel_id: str, channel: ChannelUpdate
    ) -> dict[str, Any]:
        """Replaces `header` and `purpose` and, when given, `name` and `display_name`; the type
        cannot change."""
        values: dict[str, Any] = {"header": channel.header, "purpose": channel.purpose}
        if channel.name:
            values["name"] = channel.name
        if channel.display_name:
            values["display_name"] = channel.display_name
        if channel.type:
            values["type"] = channel.type
        return await self._edit(session, channel_id, values, full=True)

    async def _edit(
        self, session: Session, channel_id: str, values: dict[str, Any], full: bool
    ) -> dict[str, Any]:
        current = await self.access.get_row(channel_id)
        await self.access.require(
            session,
            current,
            channel_permission(
                current.type,
                "manage_public_channel_properties",
                "manage_private_channel_properties",
            ),
        )
        if current.delete_at:
            raise _archived()
        if values.pop("type", current.type) != current.type:
            raise AppError(
                "api.channel.update_channel.typechange.app_error",
                "Channel type cannot be updated.",
                400,
            )
        if current.type in ("D", "G"):
            if not full and ({"name", "display_name"} & set(values)):
                raise AppError(
                    "api.channel.patch_update_channel.forbidden.app_error",
                    "Only the header and purpose of direct and group channels can be changed.",
                    400,
                )
            values.pop("name", None)
            values.pop("display_name", None)
        elif current.name == TOWN_SQUARE and values.get("name", TOWN_SQUARE) != TOWN_SQUARE:
            raise AppError(
                "api.channel.update_channel.tried.app_error",
                f"Tried to perform an invalid update of the default channel {TOWN_SQUARE}.",
                400,
            )
        merged = {**current._mapping, **values}
        if current.type in ("O", "P"):
            validate_channel_fields(
                merged["name"], merged["display_name"], merged["header"], merged["purpose"]
            )
        values["update_at"] = now_ms()
        async with self.db.write() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        update(channels).where(channels.c.id == channel_id).values(**values)
                    )
            except IntegrityError:
                raise AppError(
                    "store.sql_channel.update.exists.app_error",
                    "A channel with that name already exists on the same team.",
                    400,
                ) from None
            row = await self.access.get_row(channel_id, conn)
            data = channel_json(row)
            await self.events.publish(
                Event(
                    "channel_updated",
                    {"channel": orjson.dumps(data).decode()},
                    Broadcast(channel_id=channel_id),
                ),
                conn,
            )
        return data

    async def archive(self, session: Session, channel_id: str) -> None:
        """Archives (soft-deletes) a public or private channel; Town Square cannot be archived."""
        current = await self.access.get_row(channel_id)
        if current.type not in ("O", "P"):
            raise AppError(
                "api.channel.delete_channel.type.invalid",
                "Could not delete direct or group message channels.",
                400,
            )
        await self.access.require(
            session,
            current,
            channel_permission(current.type, "delete_public_channel", "delete_private_channel"),
        )
        if current.delete_at:
            raise _archived("delete_channel")
        if current.name == TOWN_SQUARE:
            raise AppError(
                "api.channel.delete_channel.cannot.app_error",
                f"Unable to delete the default channel {TOWN_SQUARE}.",
                400,
            )
        now = now_ms()
        async with self.db.write() as conn:
            await conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(delete_at=now, update_at=now)
            )
            audience = (
                Broadcast(team_id=current.team_id)
                if current.type == "O"
                else Broadcast(channel_id=channel_id)
            )
            await self.events.publish(
                Event(
                    "channel_deleted",
                    {"channel_id": channel_id, "delete_at": now, "team_id": current.team_id},
                    audience,
                ),
                conn,
            )

    async def restore(self, session: Session, channel_id: str) -> dict[str, Any]:
        """Unarchives a channel (`manage_team` on its team: team admins and system admins)."""
        current = await self.access.get_row(channel_id)
        if not await self.teams.has(session, current.team_id, "manage_team"):
            raise forbidden("manage_team")
        if not current.delete_at:
            raise AppError(
                "api.channel.restore_channel.restored.app_error",
                "Unable to unarchive channel. The channel is not archived.",
                400,
            )
        async with self.db.write() as conn:
            await conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(delete_at=0, update_at=now_ms())
            )
            row = await self.access.get_row(channel_id, conn)
            await self.events.publish(
                Event(
                    "channel_restored",
                    {"channel_id": channel_id, "team_id": current.team_id},
                    Broadcast(team_id=current.team_id),
                ),
                conn,
            )
        return channel_json(row)
