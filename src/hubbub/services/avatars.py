"""Profile pictures: the generated default, uploads, and going back to the default.

An uploaded picture is stored (as the 128x128 PNG `avatar_image.profile_picture` makes of it) in
the file store at `users/{id}/profile.png`, Mattermost's path; `users.last_picture_update` is set
to the time of the upload, and clients add it to the image URL (`?_=`) to bust their cache. A user
without a stored picture gets the generated default. Removing the picture deletes the file and
resets `last_picture_update` to 0. Both changes send `user_updated` to everyone, as Mattermost
does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import update

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError
from hubbub.files import FileBackend
from hubbub.ids import now_ms
from hubbub.services import avatar_image
from hubbub.services.byte_cache import BytesLRU
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.services.users import UsersService, user_json
from hubbub.store.db import Database
from hubbub.store.tables import users


def picture_path(user_id: str) -> str:
    return f"users/{user_id}/profile.png"


@dataclass(frozen=True, slots=True)
class Picture:
    """PNG bytes and the ETag they are served with (None: do not let clients cache by tag)."""

    data: bytes
    etag: str | None
    generated: bool


# Every request for a picture used to draw it (~1.6 ms of CPU for a generated one) or read it
# from the file store; the apps ask for each author's picture on every page of posts. Pictures
# are kept by what they are made of, so a change is a new key and nothing goes stale: a
# generated one by its colour and letters (there are 12 colours: users share them), a stored
# one by its user and `last_picture_update`, which every upload and reset changes on every node.
PICTURE_CACHE_BYTES = 16 * 1024 * 1024


class AvatarsService:
    def __init__(
        self,
        db: Database,
        files: FileBackend,
        users_service: UsersService,
        permissions: Permissions,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.files = files
        self.users = users_service
        self.permissions = permissions
        self.events = events
        self.cache = BytesLRU(PICTURE_CACHE_BYTES)

    async def require_edit(self, session: Session, user_id: str) -> None:
        await self.permissions.require_user(session, user_id)

    async def picture(self, user_id: str) -> Picture:
        """The stored picture, else the generated default. ETag: `last_picture_update` (as
        Mattermost), with the initials drawn for a generated one, so renaming changes it."""
        row = await self.users.get_row(user_id)
        if row.last_picture_update > 0:
            key = ("stored", user_id, row.last_picture_update)
            data = self.cache.get(key)
            if data is None:
                try:
                    data = await self.files.read(picture_path(user_id))
                except FileNotFoundError:
                    data = None
                else:
                    self.cache.put(key, data)
            if data is not None:
                return Picture(data, str(row.last_picture_update), False)
        letters = avatar_image.initials(row.username, row.first_name, row.last_name)
        data = await self._generated(row.id, letters)
        return Picture(data, f"{row.last_picture_update}.{letters.encode().hex()}", True)

    async def default_picture(self, user_id: str) -> bytes:
        row = await self.users.get_row(user_id)
        return await self._generated(
            row.id, avatar_image.initials(row.username, row.first_name, row.last_name)
        )

    async def _generated(self, user_id: str, letters: str) -> bytes:
        key = ("generated", avatar_image.colour_for(user_id), letters)
        data = self.cache.get(key)
        if data is None:
            data = await asyncio.to_thread(avatar_image.default_avatar, user_id, letters)
            self.cache.put(key, data)
        return data

    async def upload(self, session: Session, user_id: str, data: bytes) -> None:
        await self.require_edit(session, user_id)
        try:
            await self.users.get_row(user_id)
        except AppError:
            raise AppError(
                "api.context.invalid_url_param.app_error",
                "Invalid or missing user_id parameter in request URL.",
                400,
            ) from None
        png = await asyncio.to_thread(avatar_image.profile_picture, data)
        try:
            await self.files.write(picture_path(user_id), png)
        except OSError as exc:
            raise AppError(
                "api.user.upload_profile_user.upload_profile.app_error",
                "Couldn't upload profile image.",
                500,
                detailed_error=repr(exc),
            ) from None
        now = now_ms()
        await self._set_picture_time(user_id, now)

    async def reset(self, session: Session, user_id: str) -> None:
        await self.require_edit(session, user_id)
        await self.users.get_row(user_id)
        try:
            await self.files.remove(picture_path(user_id))
        except OSError as exc:
            raise AppError(
                "api.user.upload_profile_user.upload_profile.app_error",
                "Couldn't upload profile image.",
                500,
                detailed_error=repr(exc),
            ) from None
        await self._set_picture_time(user_id, 0)

    async def _set_picture_time(self, user_id: str, picture_at: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(last_picture_update=picture_at, update_at=now_ms())
            )
            row = await self.users.get_row(user_id, conn)
            await self.events.publish(
                Event("user_updated", {"user": user_json(row)}, Broadcast()), conn
            )
