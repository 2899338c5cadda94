"""Custom emoji: create (name rules, image checked and shrunk), list, look up, search, delete.

An emoji is a row in `emoji` plus its image in the file store at `emoji/{id}/image` (Mattermost's
path, so a store shared with a Mattermost server reads the same). The image is written before the
row is committed and removed again if the row cannot be; a deleted emoji keeps its row
(`delete_at`) and its image moves to `emoji/{id}/image_deleted`, and the reactions that used its
name are deleted, as in Mattermost. `emoji_added` goes to everyone.

Who may: `create_emojis` / `delete_emojis` at system scope or in any team the caller belongs to
(`system_user` has both by default), `delete_others_emojis` to delete someone else's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, forbidden
from hubbub.files import FileBackend
from hubbub.ids import new_id, now_ms
from hubbub.services import avatar_image
from hubbub.services.permissions import Permissions
from hubbub.services.post_model import bumped_update_at, dumps
from hubbub.services.session import Session
from hubbub.services.system_emoji import SYSTEM_EMOJI_NAMES
from hubbub.store.db import Database
from hubbub.store.tables import emoji, posts, reactions, team_members

NAME_MAX = 64
_NAME = re.compile(r"^[a-zA-Z0-9+_-]+$")
MAX_EMOJI_FILE_SIZE = 1 << 19  # 512 KiB, Mattermost's MaxEmojiFileSize
MAX_NAMES = 200  # POST /emoji/names
AUTOCOMPLETE_LIMIT = 100
SEARCH_LIMIT = 200


def emoji_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "create_at": row.create_at,
        "update_at": row.update_at,
        "delete_at": row.delete_at,
        "creator_id": row.creator_id,
        "name": row.name,
    }


def image_path(emoji_id: str) -> str:
    return f"emoji/{emoji_id}/image"


def check_name(name: object) -> str:
    """Mattermost's `IsValidEmojiName`: 1 to 64 of `a-zA-Z0-9+_-`, and not a system emoji."""
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or not _NAME.match(name):
        raise AppError(
            "model.emoji.name.app_error",
            "Name must be 1 to 64 lowercase alphanumeric characters.",
            400,
        )
    if name in SYSTEM_EMOJI_NAMES:
        raise AppError(
            "model.emoji.system_emoji_name.app_error",
            "Name conflicts with an existing system emoji name.",
            400,
        )
    return name


@dataclass(frozen=True, slots=True)
class NewEmoji:
    name: str
    creator_id: str
    image: bytes


def _disabled() -> AppError:
    return AppError(
        "api.emoji.disabled.app_error", "Custom emoji have been disabled by the system admin.", 501
    )


def _not_found(by_name: bool = False) -> AppError:
    if by_name:
        return AppError("app.emoji.get_by_name.no_result", "Unable to find the emoji.", 404)
    return AppError("app.emoji.get.no_result", "Unable to find the emoji.", 404)


class EmojiService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        files: FileBackend,
        permissions: Permissions,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.files = files
        self.permissions = permissions
        self.events = events

    @property
    def enabled(self) -> bool:
        return self.settings.ServiceSettings.EnableCustomEmoji

    def check_enabled(self) -> None:
        if not self.enabled:
            raise _disabled()

    async def _allowed(self, session: Session, permission: str) -> bool:
        """System scope, or any team the caller is an active member of (Mattermost lets a team
        role grant the emoji permissions for the whole server)."""
        if await self.permissions.has(session, permission):
            return True
        async with self.db.read() as conn:
            team_ids = (
                await conn.execute(
                    select(team_members.c.team_id).where(
                        team_members.c.user_id == session.user_id, team_members.c.delete_at == 0
                    )
                )
            ).scalars()
            teams = list(team_ids)
        for team_id in teams:
            if await self.permissions.has_for_team(session, team_id, permission):
                return True
        return False

    async def require(self, session: Session, permission: str) -> None:
        if not await self._allowed(session, permission):
            raise forbidden(permission)

    # Creating

    async def create(self, session: Session, new: NewEmoji) -> dict[str, Any]:
        self.check_enabled()
        await self.require(session, "create_emojis")
        name = check_name(new.name)
        if new.creator_id != session.user_id:
            raise AppError("api.emoji.create.other_user.app_error", "Invalid user id.", 403)
        if await self._live_row(name) is not None:
            raise AppError(
                "api.emoji.create.duplicate.app_error",
                "Unable to create emoji. Another emoji with the same name already exists.",
                400,
            )
        stored = await asyncio.to_thread(avatar_image.emoji_image, new.image)
        emoji_id = new_id()
        now = now_ms()
        row = {
            "id": emoji_id,
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "creator_id": session.user_id,
            "name": name,
        }
        await self.files.write(image_path(emoji_id), stored)
        try:
            async with self.db.write() as conn:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(emoji).values(**row))
                except IntegrityError:
                    raise AppError(
                        "api.emoji.create.duplicate.app_error",
                        "Unable to create emoji. Another emoji with the same name already exists.",
                        400,
                    ) from None
                created = (await conn.execute(select(emoji).where(emoji.c.id == emoji_id))).one()
                await self.events.publish(
                    Event("emoji_added", {"emoji": dumps(emoji_json(created))}, Broadcast()), conn
                )
        except BaseException:
            await self.files.remove(image_path(emoji_id))
            raise
        return emoji_json(created)

    # Reading

    async def _live_row(self, name: str) -> Row[Any] | None:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(emoji).where(emoji.c.name == name, emoji.c.delete_at == 0)
                )
            ).first()

    async def exists(self, name: str) -> bool:
        """True if a custom emoji of that name exists (reactions accept it)."""
        return await self._live_row(name) is not None

    async def get(self, emoji_id: str) -> dict[str, Any]:
        self.check_enabled()
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(emoji).where(emoji.c.id == emoji_id, emoji.c.delete_at == 0)
                )
            ).first()
        if row is None:
            raise _not_found()
        return emoji_json(row)

    async def by_name(self, name: str) -> dict[str, Any]:
        self.check_enabled()
        row = await self._live_row(name)
        if row is None:
            raise _not_found(by_name=True)
        return emoji_json(row)

    async def by_names(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """`POST /emoji/names`: the ones that exist, unknown names left out."""
        wanted = sorted(set(names))
        if not wanted:
            raise AppError(
                "api.context.invalid_param.app_error", "Invalid or missing names parameter.", 400
            )
        self.check_enabled()
        if len(wanted) > MAX_NAMES:
            raise AppError(
                "api.emoji.get_multiple_by_name_too_many.request_error",
                f"Unable to get that many emojis by name. Only {MAX_NAMES} emojis can be "
                "requested at once.",
                400,
            )
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(emoji)
                .where(emoji.c.name.in_(wanted), emoji.c.delete_at == 0)
                .order_by(emoji.c.name)
            )
            return [emoji_json(r) for r in rows]

    async def list_page(self, page: int, per_page: int, sort: str) -> list[dict[str, Any]]:
        self.check_enabled()
        if sort not in ("", "name"):
            raise AppError(
                "api.context.invalid_url_param.app_error",
                "Invalid or missing sort parameter in request URL.",
                400,
            )
        order = (emoji.c.name,) if sort == "name" else (emoji.c.create_at, emoji.c.id)
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(emoji)
                .where(emoji.c.delete_at == 0)
                .order_by(*order)
                .offset(page * per_page)
                .limit(per_page)
            )
            return [emoji_json(r) for r in rows]

    async def search(self, term: str, prefix_only: bool, limit: int) -> list[dict[str, Any]]:
        """Names starting with `term` (or, without `prefix_only`, containing it), by name."""
        self.check_enabled()
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = (escaped if prefix_only else "%" + escaped) + "%"
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(emoji)
                .where(emoji.c.delete_at == 0, emoji.c.name.like(pattern, escape="\\"))
                .order_by(emoji.c.name)
                .limit(limit)
            )
            return [emoji_json(r) for r in rows]

    async def image(self, emoji_id: str) -> tuple[bytes, str]:
        """The image and its MIME type."""
        self.check_enabled()
        await self.get(emoji_id)
        try:
            data = await self.files.read(image_path(emoji_id))
        except FileNotFoundError:
            raise AppError(
                "api.emoji.get_image.read.app_error", "Unable to read image file for emoji.", 404
            ) from None
        mime = avatar_image.image_mime(data)
        if not mime:
            raise AppError(
                "api.emoji.get_image.decode.app_error",
                "Unable to decode image file for emoji.",
                500,
            )
        return data, mime

    # Deleting

    async def delete(self, session: Session, emoji_id: str) -> None:
        self.check_enabled()
        found = await self.get(emoji_id)
        await self.require(session, "delete_emojis")
        if found["creator_id"] != session.user_id:
            await self.require(session, "delete_others_emojis")
        now = now_ms()
        async with self.db.write() as conn:
            changed = await conn.execute(
                update(emoji)
                .where(emoji.c.id == emoji_id, emoji.c.delete_at == 0)
                .values(delete_at=now, update_at=now)
            )
            if changed.rowcount != 1:
                raise AppError("app.emoji.delete.no_results", "Unable to find the emoji.", 404)
            await self._drop_reactions(conn, found["name"], now)
        try:
            data = await self.files.read(image_path(emoji_id))
            await self.files.write(f"emoji/{emoji_id}/image_deleted", data)
            await self.files.remove(image_path(emoji_id))
        except OSError:
            pass  # the row is gone; a stray image is harmless

    @staticmethod
    async def _drop_reactions(conn: AsyncConnection, name: str, now: int) -> None:
        """The reactions with a deleted emoji's name go too (no events, as in Mattermost); the
        posts they were on keep `has_reactions` right."""
        used = and_(reactions.c.emoji_name == name, reactions.c.delete_at == 0)
        post_ids = list((await conn.execute(select(reactions.c.post_id).where(used))).scalars())
        if not post_ids:
            return
        await conn.execute(update(reactions).where(used).values(delete_at=now, update_at=now))
        still = exists().where(reactions.c.post_id == posts.c.id, reactions.c.delete_at == 0)
        await conn.execute(
            update(posts)
            .where(posts.c.id.in_(sorted(set(post_ids))))
            .values(has_reactions=still, update_at=bumped_update_at(now))
        )
