"""Pass 2's posts: the post lines of a batch written with a handful of statements.

The roots of the batch that already exist are found with one query (by channel and creation
time, then matched on author and message: Mattermost's unique key), and the replies of those
with another. Everything new is inserted with one statement per table, with ids derived from
its key. Counters follow incrementally: a new root carries its reply count and last reply time
from its line; a channel's totals and last post times grow by what the batch added; a root
that existed and gained replies, or a post that gained reactions, is updated. A repeated line
(within the batch or a run before) only adds what it has that is missing.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import os.path
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.files import FileBackend
from hubbub.jobs.archive import Archive
from hubbub.jobs.bulk import derived_id
from hubbub.services import images
from hubbub.services.files import OCTET_STREAM, clean_name, extension_of, safe_mime
from hubbub.services.preferences import FLAGGED_POST, Preference, PreferencesService
from hubbub.store.tables import channels, file_infos, posts, reactions

Obj = dict[str, Any]
Key = tuple[str, str, str, int, str]  # channel, root, author, create_at, message
UserId = Callable[[AsyncConnection, str], Awaitable[str]]


@dataclass
class Incoming:
    channel_id: str
    body: Obj


@dataclass
class _ChannelGrowth:
    posts: int = 0
    roots: int = 0
    last: int = 0
    last_root: int = 0


@dataclass
class _Batch:
    new: list[Obj] = field(default_factory=list)
    known: dict[Key, str] = field(default_factory=dict)
    reactions: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    channel_of: dict[str, str] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)
    changes: dict[str, Obj] = field(default_factory=dict)
    grown_roots: dict[str, list[int]] = field(default_factory=dict)
    growth: dict[str, _ChannelGrowth] = field(default_factory=lambda: defaultdict(_ChannelGrowth))
    flags: list[Preference] = field(default_factory=list)


def greatest(conn: AsyncConnection, column: Any, value: int) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return func.max(column, value)
    return func.greatest(column, value)


class PostWriter:
    def __init__(
        self, files: FileBackend, archive: Archive, user_id: UserId, counts: dict[str, int]
    ) -> None:
        self.files = files
        self.archive = archive
        self.user_id = user_id
        self.counts = counts

    async def write(self, conn: AsyncConnection, items: list[Incoming]) -> None:
        batch = _Batch()
        roots = [(item, await self._key(conn, item.channel_id, "", item.body)) for item in items]
        batch.known = await self._find(conn, [key for _, key in roots])
        replies = []
        for item, key in roots:
            root_id = batch.known.get(key) or _derived(key)
            for reply in item.body.get("replies") or []:
                replies.append(await self._key(conn, item.channel_id, root_id, reply))
        batch.known.update(await self._find(conn, replies))
        for item, key in roots:
            await self._root(conn, batch, item, key)
        await self._insert(conn, batch)

    async def _key(self, conn: AsyncConnection, channel_id: str, root_id: str, body: Obj) -> Key:
        user_id = await self.user_id(conn, body["user"])
        return (channel_id, root_id, user_id, int(body["create_at"]), body["message"])

    @staticmethod
    async def _find(conn: AsyncConnection, keys: list[Key]) -> dict[Key, str]:
        """The ids of the posts with these keys that are stored already."""
        if not keys:
            return {}
        found: dict[Key, str] = {}
        channel_ids = sorted({key[0] for key in keys})
        times = sorted({key[3] for key in keys})
        rows = await conn.execute(
            select(
                posts.c.id,
                posts.c.channel_id,
                posts.c.root_id,
                posts.c.user_id,
                posts.c.create_at,
                posts.c.message,
            ).where(posts.c.channel_id.in_(channel_ids), posts.c.create_at.in_(times))
        )
        for r in rows:
            found[(r.channel_id, r.root_id, r.user_id, int(r.create_at), r.message)] = r.id
        return found

    async def _root(self, conn: AsyncConnection, batch: _Batch, item: Incoming, key: Key) -> None:
        body, channel_id = item.body, item.channel_id
        post_id, row = await self._place(conn, batch, key, body)
        replies = []
        for reply in body.get("replies") or []:
            reply_key = await self._key(conn, channel_id, post_id, reply)
            _, reply_row = await self._place(conn, batch, reply_key, reply)
            if reply_row is not None:
                replies.append(reply_key[3])
        if row is not None:
            row["reply_count"] = len(replies)
            row["last_reply_at"] = max(replies, default=0)
        elif replies:
            batch.grown_roots.setdefault(post_id, []).extend(replies)

    async def _place(
        self, conn: AsyncConnection, batch: _Batch, key: Key, body: Obj
    ) -> tuple[str, Obj | None]:
        """Queues the post of `key` for insertion (returning its row), or the changes to the
        one stored (returning None)."""
        channel_id, root_id, user_id, create_at, message = key
        existing = batch.known.get(key)
        post_id = existing or _derived(key)
        files = [
            await self._attachment(conn, post_id, channel_id, user_id, create_at, a["path"])
            for a in body.get("attachments") or []
        ]
        wanted = {}
        for reaction in body.get("reactions") or []:
            reactor = await self.user_id(conn, reaction["user"])
            wanted[(reactor, reaction["emoji_name"])] = int(reaction["create_at"])
        if wanted:
            batch.reactions.setdefault(post_id, {}).update(wanted)
            batch.channel_of[post_id] = channel_id
        for name in body.get("flagged_by") or []:
            flagger = await self.user_id(conn, name)
            batch.flags.append(Preference(flagger, FLAGGED_POST, post_id, "true"))
        if existing is not None:
            batch.existing.add(post_id)
            changes: Obj = {}
            if body.get("is_pinned") is not None:
                changes["is_pinned"] = bool(body["is_pinned"])
            if files:
                changes["file_ids"] = files
            if changes:
                batch.changes.setdefault(post_id, {}).update(changes)
            return post_id, None
        batch.known[key] = post_id
        edit_at = int(body.get("edit_at") or 0)
        row: Obj = {
            "id": post_id,
            "create_at": create_at,
            "update_at": max(create_at, edit_at),
            "edit_at": edit_at,
            "delete_at": 0,
            "is_pinned": bool(body.get("is_pinned")),
            "user_id": user_id,
            "channel_id": channel_id,
            "root_id": root_id,
            "original_id": "",
            "message": message,
            "type": body.get("type") or "",
            "props": body.get("props") or {},
            "hashtags": "",
            "file_ids": files,
            "pending_post_id": "",
            "has_reactions": bool(wanted),
            "reply_count": 0,
            "last_reply_at": 0,
        }
        batch.new.append(row)
        growth = batch.growth[channel_id]
        growth.posts += 1
        growth.last = max(growth.last, create_at)
        if not root_id:
            growth.roots += 1
            growth.last_root = max(growth.last_root, create_at)
        return post_id, row

    async def _insert(self, conn: AsyncConnection, batch: _Batch) -> None:
        if batch.new:
            await conn.execute(insert(posts), batch.new)
            self.counts["posts"] += len(batch.new)
        for post_id, changes in batch.changes.items():
            await conn.execute(update(posts).where(posts.c.id == post_id).values(**changes))
        await self._reactions(conn, batch)
        await PreferencesService.upsert(conn, batch.flags)
        for root_id, times in batch.grown_roots.items():
            await conn.execute(
                update(posts)
                .where(posts.c.id == root_id)
                .values(
                    reply_count=posts.c.reply_count + len(times),
                    last_reply_at=greatest(conn, posts.c.last_reply_at, max(times)),
                )
            )
        for channel_id, g in batch.growth.items():
            await conn.execute(
                update(channels)
                .where(channels.c.id == channel_id)
                .values(
                    total_msg_count=channels.c.total_msg_count + g.posts,
                    total_msg_count_root=channels.c.total_msg_count_root + g.roots,
                    last_post_at=greatest(conn, channels.c.last_post_at, g.last),
                    last_root_post_at=greatest(conn, channels.c.last_root_post_at, g.last_root),
                )
            )

    async def _reactions(self, conn: AsyncConnection, batch: _Batch) -> None:
        have: set[tuple[str, str, str]] = set()
        stored = [p for p in batch.reactions if p in batch.existing]
        for chunk in _chunks(stored, 500):
            rows = await conn.execute(
                select(reactions.c.post_id, reactions.c.user_id, reactions.c.emoji_name).where(
                    reactions.c.post_id.in_(chunk)
                )
            )
            have.update((r.post_id, r.user_id, r.emoji_name) for r in rows)
        rows_new = [
            {
                "user_id": user_id,
                "post_id": post_id,
                "emoji_name": emoji,
                "create_at": when,
                "update_at": when,
                "delete_at": 0,
                "channel_id": batch.channel_of[post_id],
            }
            for post_id, wanted in batch.reactions.items()
            for (user_id, emoji), when in wanted.items()
            if (post_id, user_id, emoji) not in have
        ]
        if not rows_new:
            return
        await conn.execute(insert(reactions), rows_new)
        self.counts["reactions"] += len(rows_new)
        gained = sorted({str(r["post_id"]) for r in rows_new} & batch.existing)
        for chunk in _chunks(gained, 500):
            await conn.execute(
                update(posts).where(posts.c.id.in_(chunk)).values(has_reactions=True)
            )

    async def _attachment(
        self,
        conn: AsyncConnection,
        post_id: str,
        channel_id: str,
        user_id: str,
        create_at: int,
        path: str,
    ) -> str:
        """Stores an attachment from the archive (unless stored by an earlier run) and returns
        its file id, derived from the post and the path."""
        file_id = derived_id("file", post_id, path)
        stored = (
            await conn.execute(select(file_infos.c.id).where(file_infos.c.id == file_id))
        ).first()
        if stored is not None:
            return file_id
        data = await asyncio.to_thread(self.archive.read, path)
        name = clean_name(os.path.basename(path))
        day = datetime.fromtimestamp(create_at / 1000, UTC).strftime("%Y%m%d")
        prefix = f"{day}/teams/noteam/channels/{channel_id}/users/{user_id}/{file_id}/"
        try:
            rendition = await asyncio.to_thread(images.analyze, data)
        except images.ImageTooLarge:
            rendition = None
        mime = mimetypes.guess_type(name, strict=False)[0] or ""
        if rendition is not None and rendition.mime_type and not mime.startswith("image/"):
            mime = rendition.mime_type
        row: Obj = {
            "id": file_id,
            "creator_id": user_id,
            "post_id": post_id,
            "channel_id": channel_id,
            "create_at": create_at,
            "update_at": create_at,
            "delete_at": 0,
            "path": prefix + name,
            "thumbnail_path": "",
            "preview_path": "",
            "name": name,
            "extension": extension_of(name),
            "size": len(data),
            "mime_type": safe_mime(mime) if mime else OCTET_STREAM,
            "width": 0,
            "height": 0,
            "has_preview_image": False,
            "mini_preview": None,
        }
        await self.files.write(row["path"], data)
        if rendition is not None:
            row["width"], row["height"] = rendition.width, rendition.height
            if rendition.has_preview:
                stem = os.path.splitext(name)[0] or "file"
                row["thumbnail_path"] = f"{prefix}{stem}_thumb.jpg"
                row["preview_path"] = f"{prefix}{stem}_preview.jpg"
                await self.files.write(row["thumbnail_path"], rendition.thumbnail)
                await self.files.write(row["preview_path"], rendition.preview)
                row["has_preview_image"] = not rendition.animated
                row["mini_preview"] = base64.b64encode(rendition.mini_preview).decode("ascii")
        await conn.execute(insert(file_infos).values(**row))
        self.counts["attachments"] += 1
        return file_id


def _derived(key: Key) -> str:
    channel_id, root_id, user_id, create_at, message = key
    return derived_id("post", channel_id, root_id, user_id, str(create_at), message)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
