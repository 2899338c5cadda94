"""Synced drafts: what a user has typed but not sent, per channel and thread, on every device.

A draft is keyed by (user, channel, root_id); saving one that exists replaces its message, props
and files (its `create_at` stays). Saving an empty message deletes the draft, as Mattermost does.
A user's drafts for a team are those in the team's channels and in their direct and group
channels, newest first, in channels they are still a member of. Every change reaches the user's
other connections (`draft_created` for a new draft, `draft_updated` for a changed one,
`draft_deleted`), never the connection that made it (the `Connection-Id` header).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, forbidden
from hubbub.ids import is_valid_id, now_ms
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.files import file_info_json
from hubbub.services.permissions import Permissions
from hubbub.services.post_model import MAX_FILE_IDS, dumps
from hubbub.services.session import Session
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, drafts, file_infos

PROPS_MAX = 800_000  # runes of JSON, Mattermost's PostPropsMaxRunes


@dataclass(frozen=True, slots=True)
class NewDraft:
    channel_id: str
    root_id: str = ""
    message: str = ""
    props: Mapping[str, Any] = field(default_factory=dict)
    file_ids: tuple[str, ...] = ()
    priority: Mapping[str, Any] | None = None
    create_at: int = 0


def _invalid(what: str) -> AppError:
    return AppError(f"model.draft.is_valid.{what}.app_error", f"Invalid draft {what}.", 400)


def draft_json(
    row: Row[Any] | Mapping[str, Any], files: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    d = row._mapping if isinstance(row, Row) else row
    data: dict[str, Any] = {
        "create_at": d["create_at"],
        "update_at": d["update_at"],
        "delete_at": d["delete_at"],
        "user_id": d["user_id"],
        "channel_id": d["channel_id"],
        "root_id": d["root_id"],
        "message": d["message"],
        "props": dict(d["props"] or {}),
    }
    if d["file_ids"]:
        data["file_ids"] = list(d["file_ids"])
    if files:
        data["metadata"] = {"files": list(files)}
    if d["priority"]:
        data["priority"] = dict(d["priority"])
    return data


class DraftsService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        channels_access: ChannelAccess,
        permissions: Permissions,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.channels = channels_access
        self.permissions = permissions
        self.events = events

    def check_enabled(self) -> None:
        if not self.settings.ServiceSettings.AllowSyncedDrafts:
            raise AppError(
                "api.drafts.disabled.app_error", "Drafts are disabled on this server.", 501
            )

    async def upsert(
        self, session: Session, new: NewDraft, connection_id: str = ""
    ) -> dict[str, Any] | None:
        """Saves the caller's draft; None when an empty message deleted it instead."""
        self.check_enabled()
        if not await self._may_post(session, new.channel_id):
            raise forbidden("create_post")
        self._validate(new)
        channel = await self.channels.get_row(new.channel_id)
        if channel.delete_at:
            raise AppError(
                "api.draft.create_draft.can_not_draft_to_deleted.error",
                "Cannot create a draft in an archived channel.",
                400,
            )
        user_id = session.user_id
        key = and_(
            drafts.c.user_id == user_id,
            drafts.c.channel_id == new.channel_id,
            drafts.c.root_id == new.root_id,
        )
        broadcast = Broadcast(
            user_id=user_id, channel_id=new.channel_id, omit_connection_id=connection_id
        )
        async with self.db.write() as conn:
            existing = (await conn.execute(select(drafts).where(key))).first()
            if not new.message:
                if existing is not None:
                    await conn.execute(delete(drafts).where(key))
                return None
            now = now_ms()
            values = {
                "user_id": user_id,
                "channel_id": new.channel_id,
                "root_id": new.root_id,
                "create_at": new.create_at or now,
                "update_at": now,
                "delete_at": 0,
                "message": new.message,
                "props": dict(new.props),
                "file_ids": list(dict.fromkeys(new.file_ids)),
                "priority": dict(new.priority) if new.priority else None,
            }
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = insert(drafts).values(**values)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["user_id", "channel_id", "root_id"],
                    set_={
                        name: statement.excluded[name]
                        for name in (
                            "update_at",
                            "delete_at",
                            "message",
                            "props",
                            "file_ids",
                            "priority",
                        )
                    },
                )
            )
            row = (await conn.execute(select(drafts).where(key))).one()
            draft = draft_json(row, await self._files(conn, user_id, row.file_ids))
            event = "draft_created" if existing is None else "draft_updated"
            await self.events.publish(Event(event, {"draft": dumps(draft)}, broadcast), conn)
        return draft

    def _validate(self, new: NewDraft) -> None:
        if not is_valid_id(new.channel_id):
            raise _invalid("channel_id")
        if new.root_id and not is_valid_id(new.root_id):
            raise _invalid("root_id")
        limit = self.settings.ServiceSettings.MaxPostSize
        if len(new.message) > limit:
            raise AppError(
                "model.draft.is_valid.message_length.app_error",
                f"Invalid Message property length. Maximum is {limit}.",
                400,
            )
        if len(new.file_ids) > MAX_FILE_IDS or not all(is_valid_id(f) for f in new.file_ids):
            raise _invalid("file_ids")
        if len(dumps(dict(new.props))) > PROPS_MAX:
            raise _invalid("props")
        if new.priority and len(dumps(dict(new.priority))) > PROPS_MAX:
            raise _invalid("priority")

    async def _may_post(self, session: Session, channel_id: str) -> bool:
        """`create_post` in the channel, or `create_post_public` in the team of a public one.
        An unknown channel is a 404 (there is nothing to hide)."""
        channel = await self.channels.get_row(channel_id)
        if await self.permissions.has_for_channel(session, channel, "create_post"):
            return True
        return channel.type == "O" and await self.permissions.has_for_team(
            session, channel.team_id, "create_post_public"
        )

    @staticmethod
    async def _files(
        conn: Any, user_id: str, file_ids: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """The draft's files the user uploaded and has not posted yet."""
        if not file_ids:
            return []
        rows = await conn.execute(
            select(file_infos).where(
                file_infos.c.id.in_(list(file_ids)),
                file_infos.c.creator_id == user_id,
                file_infos.c.post_id == "",
                file_infos.c.delete_at == 0,
            )
        )
        by_id = {r.id: file_info_json(r) for r in rows}
        return [by_id[f] for f in file_ids if f in by_id]

    async def for_team(self, session: Session, user_id: str, team_id: str) -> list[dict[str, Any]]:
        self.check_enabled()
        if user_id != session.user_id:
            raise forbidden("edit_other_users")
        if not await self.permissions.has_for_team(session, team_id, "view_team"):
            raise forbidden("view_team")
        query = (
            select(drafts)
            .join(
                channel_members,
                and_(
                    channel_members.c.channel_id == drafts.c.channel_id,
                    channel_members.c.user_id == drafts.c.user_id,
                ),
            )
            .join(channels, channels.c.id == drafts.c.channel_id)
            .where(
                drafts.c.user_id == user_id,
                drafts.c.delete_at == 0,
                or_(channels.c.team_id == team_id, channels.c.team_id == ""),
            )
            .order_by(drafts.c.update_at.desc(), drafts.c.channel_id, drafts.c.root_id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
            return [draft_json(r, await self._files(conn, user_id, r.file_ids)) for r in rows]

    async def delete(
        self, session: Session, user_id: str, channel_id: str, root_id: str, connection_id: str = ""
    ) -> None:
        """Deletes the caller's draft; a draft that is not there is no error."""
        self.check_enabled()
        if user_id != session.user_id:
            raise forbidden("edit_other_users")
        key = and_(
            drafts.c.user_id == user_id,
            drafts.c.channel_id == channel_id,
            drafts.c.root_id == root_id,
        )
        async with self.db.write() as conn:
            row = (await conn.execute(select(drafts).where(key))).first()
            if row is None:
                return
            await conn.execute(delete(drafts).where(key))
            broadcast = Broadcast(
                user_id=user_id, channel_id=channel_id, omit_connection_id=connection_id
            )
            await self.events.publish(
                Event("draft_deleted", {"draft": dumps(draft_json(row))}, broadcast), conn
            )
