"""File uploads, file infos, thumbnails and previews.

Upload: the route hands over each file's name and bytes; images are decoded in a worker thread
(`images.analyze`); the original, its thumbnail and preview go to the `FileBackend`; then one
transaction inserts the `file_infos` rows. A file is attached to a post later, by the posts
service calling `attach` inside the post's own transaction. Reading a file, its info, thumbnail or
preview needs read access to its channel (or being its uploader, as in Mattermost).

Storage paths follow Mattermost's layout, `YYYYMMDD/teams/noteam/channels/{channel}/users/{user}/
{file}/{name}`, under `FileSettings.Directory`; they are never serialized to clients.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
import os.path
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, not_found
from hubbub.files import FileBackend
from hubbub.ids import new_id, now_ms
from hubbub.services import images
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.session import Session
from hubbub.store.db import Database
from hubbub.store.tables import file_infos, posts

log = logging.getLogger("hubbub.files")

MAX_FILES_PER_POST = 10
MAX_NAME_CHARS = 200
MAX_EXTENSION_CHARS = 64
_SAFE_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9!#$&^_.+-]+$")
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file as the client sent it."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FileContent:
    """Bytes to send back, with what the response headers need."""

    name: str
    mime_type: str
    data: bytes


def file_info_json(row: Row[Any]) -> dict[str, Any]:
    """A FileInfo as Mattermost serializes it (omitempty fields left out when empty)."""
    info: dict[str, Any] = {
        "id": row.id,
        "user_id": row.creator_id,
        "channel_id": row.channel_id,
        "create_at": row.create_at,
        "update_at": row.update_at,
        "delete_at": row.delete_at,
        "name": row.name,
        "extension": row.extension,
        "size": row.size,
        "mime_type": row.mime_type,
        "mini_preview": row.mini_preview,
        "remote_id": None,
        "archived": False,
    }
    if row.post_id:
        info["post_id"] = row.post_id
    if row.width:
        info["width"] = row.width
    if row.height:
        info["height"] = row.height
    if row.has_preview_image:
        info["has_preview_image"] = True
    return info


def clean_name(raw: str) -> str:
    """A file name safe to store and to put in a path: no directories, no control characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in {"Cc", "Cf", "Cs"}).strip()
    if name.strip(".") == "":
        name = "file"
    if len(name) > MAX_NAME_CHARS:
        stem, ext = os.path.splitext(name)
        ext = ext[:MAX_EXTENSION_CHARS]
        name = stem[: MAX_NAME_CHARS - len(ext)] + ext
    return name


def extension_of(name: str) -> str:
    return os.path.splitext(name)[1][1:].lower()[:MAX_EXTENSION_CHARS]


def safe_mime(value: str) -> str:
    return value if _SAFE_MIME.match(value) else OCTET_STREAM


def _no_file(what: str) -> AppError:
    return AppError(
        f"api.file.{what}.app_error", "Unable to find the file.", 404, detailed_error=what
    )


class FilesService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        backend: FileBackend,
        channels: ChannelAccess,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.backend = backend
        self.channels = channels

    # Upload

    def check_enabled(self) -> None:
        if not self.settings.FileSettings.EnableFileAttachments:
            raise AppError(
                "api.file.attachments.disabled.app_error",
                "File attachments have been disabled on this server.",
                501,
            )

    def check_size(self, name: str, size: int) -> None:
        limit = self.settings.FileSettings.MaxFileSize
        if size > limit:
            raise AppError(
                "api.file.upload_file.too_large_detailed.app_error",
                f"Unable to upload file {name}. {size} bytes exceeds the maximum allowed "
                f"{limit} bytes.",
                413,
            )

    async def upload(
        self, session: Session, channel_id: str, uploads: list[Upload]
    ) -> list[dict[str, Any]]:
        """Stores `uploads` for `channel_id`; returns their FileInfos in the same order."""
        self.check_enabled()
        if not uploads:
            raise AppError(
                "api.context.invalid_param.app_error", "Invalid or missing files parameter.", 400
            )
        await self.channels.require_upload(session, channel_id)
        for upload in uploads:
            self.check_size(upload.name, len(upload.data))

        now = now_ms()
        day = datetime.fromtimestamp(now / 1000, UTC).strftime("%Y%m%d")
        rows: list[dict[str, Any]] = []
        written: list[str] = []
        try:
            for upload in uploads:
                row = await self._store(upload, channel_id, session.user_id, now, day, written)
                rows.append(row)
            async with self.db.write() as conn:
                await conn.execute(insert(file_infos), rows)
                result = await conn.execute(
                    select(file_infos).where(file_infos.c.id.in_([r["id"] for r in rows]))
                )
                by_id = {r.id: r for r in result}
        except BaseException:
            for path in written:
                try:
                    await self.backend.remove(path)
                except OSError:
                    log.warning("could not remove an orphaned upload", extra={"path": path})
            raise
        return [file_info_json(by_id[r["id"]]) for r in rows]

    async def _store(
        self, upload: Upload, channel_id: str, user_id: str, now: int, day: str, written: list[str]
    ) -> dict[str, Any]:
        file_id = new_id()
        name = clean_name(upload.name)
        prefix = f"{day}/teams/noteam/channels/{channel_id}/users/{user_id}/{file_id}/"
        try:
            rendition = await asyncio.to_thread(images.analyze, upload.data)
        except images.ImageTooLarge as exc:
            raise AppError(
                "api.file.upload_file.large_image_detailed.app_error",
                f"{name} dimensions ({exc.width} by {exc.height} pixels) exceed the limits.",
                400,
            ) from None
        mime = mimetypes.guess_type(name, strict=False)[0] or ""
        if rendition is not None and rendition.mime_type and not mime.startswith("image/"):
            mime = rendition.mime_type
        row: dict[str, Any] = {
            "id": file_id,
            "creator_id": user_id,
            "post_id": "",
            "channel_id": channel_id,
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "path": prefix + name,
            "thumbnail_path": "",
            "preview_path": "",
            "name": name,
            "extension": extension_of(name),
            "size": len(upload.data),
            "mime_type": safe_mime(mime) if mime else OCTET_STREAM,
            "width": 0,
            "height": 0,
            "has_preview_image": False,
            "mini_preview": None,
        }
        await self.backend.write(row["path"], upload.data)
        written.append(row["path"])
        if rendition is not None:
            row["width"], row["height"] = rendition.width, rendition.height
            if rendition.has_preview:
                stem = os.path.splitext(name)[0] or "file"
                row["thumbnail_path"] = f"{prefix}{stem}_thumb.jpg"
                row["preview_path"] = f"{prefix}{stem}_preview.jpg"
                await self.backend.write(row["thumbnail_path"], rendition.thumbnail)
                written.append(row["thumbnail_path"])
                await self.backend.write(row["preview_path"], rendition.preview)
                written.append(row["preview_path"])
                # Animated GIFs are shown as they are, so clients must not use the still preview.
                row["has_preview_image"] = not rendition.animated
                row["mini_preview"] = base64.b64encode(rendition.mini_preview).decode("ascii")
        return row

    # Posts

    async def attach(
        self,
        conn: AsyncConnection,
        file_ids: list[str],
        post_id: str,
        channel_id: str,
        user_id: str,
    ) -> list[str]:
        """Attaches files to a new post, inside the post's write transaction `conn`.

        Only files `user_id` uploaded to `channel_id` and not yet attached (nor deleted) are
        accepted, at most 10, in the order given. Returns the accepted ids.
        """
        wanted = [i for i in dict.fromkeys(file_ids) if isinstance(i, str)]
        if not wanted:
            return []
        candidates = {
            r.id
            for r in await conn.execute(
                select(file_infos.c.id).where(
                    file_infos.c.id.in_(wanted),
                    file_infos.c.creator_id == user_id,
                    file_infos.c.channel_id == channel_id,
                    file_infos.c.post_id == "",
                    file_infos.c.delete_at == 0,
                )
            )
        }
        chosen = [i for i in wanted if i in candidates][:MAX_FILES_PER_POST]
        if not chosen:
            return []
        # `post_id = ''` again here: a concurrent post attaching the same file wins or loses
        # atomically, and RETURNING tells which.
        result = await conn.execute(
            update(file_infos)
            .where(file_infos.c.id.in_(chosen), file_infos.c.post_id == "")
            .values(post_id=post_id, update_at=now_ms())
            .returning(file_infos.c.id)
        )
        attached = {r.id for r in result}
        return [i for i in chosen if i in attached]

    async def delete_for_post(self, conn: AsyncConnection, post_id: str) -> None:
        """Soft-deletes the files of a deleted post, inside the post's write transaction."""
        now = now_ms()
        await conn.execute(
            update(file_infos)
            .where(file_infos.c.post_id == post_id, file_infos.c.delete_at == 0)
            .values(delete_at=now, update_at=now)
        )

    async def infos_for_posts(
        self, post_ids: Iterable[str], include_deleted: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        """FileInfo JSON per post id (every requested id present, `[]` if it has no files)."""
        ids = list(dict.fromkeys(post_ids))
        found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        if not ids:
            return found
        query = (
            select(file_infos)
            .where(file_infos.c.post_id.in_(ids))
            .order_by(file_infos.c.create_at, file_infos.c.id)
        )
        if not include_deleted:
            query = query.where(file_infos.c.delete_at == 0)
        async with self.db.read() as conn:
            for row in await conn.execute(query):
                found[row.post_id].append(file_info_json(row))
        return found

    async def infos_for_post(
        self, session: Session, post_id: str, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """GET /posts/{id}/files/info: needs read access to the post's channel; deleted posts
        and files only with `read_deleted_posts` there (else `include_deleted` is ignored)."""
        async with self.db.read() as conn:
            post = (
                await conn.execute(
                    select(posts.c.channel_id, posts.c.delete_at).where(posts.c.id == post_id)
                )
            ).first()
        if include_deleted and post is not None:
            channel = await self.channels.get_row(post.channel_id)
            include_deleted = await self.channels.has(session, channel, "read_deleted_posts")
        if post is None or (post.delete_at and not include_deleted):
            raise not_found("post", "app.post.get.app_error")
        await self.channels.require_read(session, post.channel_id)
        return (await self.infos_for_posts([post_id], include_deleted))[post_id]

    # Reading

    async def readable(self, session: Session, file_id: str) -> Row[Any]:
        """The file's row if the caller may read it: 404 if unknown or deleted, else 403 unless
        the caller uploaded it or can read its channel."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(file_infos).where(file_infos.c.id == file_id))).first()
        if row is None or row.delete_at:
            raise not_found("file", "app.file_info.get.app_error")
        if row.creator_id != session.user_id:
            await self.channels.require_read(session, row.channel_id)
        return row

    async def info(self, session: Session, file_id: str) -> dict[str, Any]:
        return file_info_json(await self.readable(session, file_id))

    async def content(self, session: Session, file_id: str) -> FileContent:
        row = await self.readable(session, file_id)
        return FileContent(row.name, safe_mime(row.mime_type), await self._read(row.path))

    async def thumbnail(self, session: Session, file_id: str) -> FileContent:
        row = await self.readable(session, file_id)
        if not row.thumbnail_path:
            raise AppError(
                "api.file.get_file_thumbnail.no_thumbnail.app_error",
                "The file doesn't have a thumbnail image.",
                404,
            )
        return FileContent(row.name, "image/jpeg", await self._read(row.thumbnail_path))

    async def preview(self, session: Session, file_id: str) -> FileContent:
        row = await self.readable(session, file_id)
        if not row.preview_path:
            raise AppError(
                "api.file.get_file_preview.no_preview.app_error",
                "The file doesn't have a preview image.",
                404,
            )
        return FileContent(row.name, "image/jpeg", await self._read(row.preview_path))

    async def _read(self, path: str) -> bytes:
        try:
            return await self.backend.read(path)
        except FileNotFoundError:
            raise _no_file("file_reader") from None
        except OSError as exc:
            raise AppError(
                "api.file.file_reader.app_error",
                "Unable to read the file.",
                500,
                detailed_error=repr(exc),
            ) from None
