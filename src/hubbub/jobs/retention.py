"""`data_retention`: deletes posts and files older than `DataRetentionSettings`' windows.

Messages (`EnableMessageDeletion`): channel by channel, the oldest `BatchSize` posts created
before the cutoff at a time, found through the (channel_id, create_at) index. For each batch the
stored files of its attachments are removed first, then one short transaction deletes the
posts, their reactions, file infos and thread memberships (the search index follows the
rows: SQLite's FTS triggers, PostgreSQL's generated column), recounts the threads that lost
replies (`reply_count`, `last_reply_at` of surviving roots) and records the running counts in
the job row. Between
batches the job pauses `TimeBetweenBatchesMilliseconds`, so other writers are never held up for
long, on SQLite least of all.

Files (`EnableFileDeletion`): file infos created before the file cutoff, with their stored
files, the same way; the posts that referred to them stay.

Resuming: the cutoffs are fixed when the first attempt starts and kept in `data`; the counts
commit with each batch. A node that dies between removing a batch's files and committing leaves
rows whose files are already gone; the next attempt selects the same rows (they are still older
than the cutoff) and deletes them, so the result and the counts are those of one run.
Replies whose root was deleted stay, as in Mattermost (the window is by creation time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.config.settings import DataRetentionConfig
from hubbub.files import FileBackend
from hubbub.ids import now_ms
from hubbub.jobs.model import DATA_RETENTION, JobData
from hubbub.jobs.worker import JobContext, JobHandler
from hubbub.store.db import Database
from hubbub.store.tables import channels, file_infos, posts, reactions, thread_memberships

log = logging.getLogger("hubbub.jobs")

HOUR_MS = 3_600_000
MORE, LAST, FINISHED = "more", "last", "finished"
Sleep = Callable[[float], Awaitable[None]]


def stored_paths(rows: Iterable[object]) -> list[str]:
    """Every path a file info row occupies in the store (original, thumbnail, preview)."""
    out: list[str] = []
    for row in rows:
        for name in ("path", "thumbnail_path", "preview_path"):
            value = getattr(row, name, "")
            if value:
                out.append(value)
    return out


async def remove_stored(files: FileBackend, paths: Iterable[str]) -> None:
    for path in paths:
        try:
            await files.remove(path)
        except ValueError:
            log.warning("file info with an unusable path; row deleted", extra={"path": path})


class DataRetention(JobHandler):
    job_type: ClassVar[str] = DATA_RETENTION
    resumable: ClassVar[bool] = True

    def __init__(
        self,
        db: Database,
        files: FileBackend,
        settings: DataRetentionConfig,
        *,
        clock: Callable[[], int] = now_ms,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.db = db
        self.files = files
        self.settings = settings
        self.clock = clock
        self.sleep = sleep

    @property
    def batch(self) -> int:
        return self.settings.BatchSize

    async def run(self, ctx: JobContext) -> JobData:
        s = self.settings
        if "message_cutoff" not in ctx.data:
            now = self.clock()
            ctx.set(
                message_cutoff=now - s.message_retention_hours * HOUR_MS
                if s.EnableMessageDeletion
                else 0,
                file_cutoff=now - s.file_retention_hours * HOUR_MS if s.EnableFileDeletion else 0,
                deleted_posts=0,
                deleted_reactions=0,
                deleted_files=0,
            )
            await ctx.progress(0)
        elif ctx.resumed:
            log.info("data retention resumed", extra={"job_id": ctx.job.id, **ctx.data})
        message_cutoff = int(ctx.data["message_cutoff"])
        file_cutoff = int(ctx.data["file_cutoff"])
        if message_cutoff:
            await self._messages(ctx, message_cutoff, 90 if file_cutoff else 100)
        if file_cutoff:
            await self._files(ctx, file_cutoff)
        return {}

    async def _messages(self, ctx: JobContext, cutoff: int, share: int) -> None:
        async with self.db.read() as conn:
            ids = list(
                (await conn.execute(select(channels.c.id).order_by(channels.c.id))).scalars()
            )
        done_through = ctx.data.get("channel_cursor", "")
        todo = [i for i in ids if i > done_through]
        for n, channel_id in enumerate(todo, 1):
            deleted = False
            while (found := await self._message_batch(ctx, channel_id, cutoff)) != FINISHED:
                deleted = True
                if found == MORE:
                    await self.sleep(self.settings.TimeBetweenBatchesMilliseconds / 1000)
            # The cursor only saves a resumed run some reading: written after a channel that
            # had old posts, and every 100 channels.
            if deleted or n % 100 == 0 or n == len(todo):
                progress = share * (len(ids) - len(todo) + n) // max(1, len(ids))
                await ctx.progress(progress, channel_cursor=channel_id)

    async def _message_batch(self, ctx: JobContext, channel_id: str, cutoff: int) -> str:
        """Deletes the next batch of old posts of one channel: `MORE` when the batch was full,
        `LAST` when it was not, `FINISHED` when there was nothing left."""
        ctx.check()
        async with self.db.read() as conn:
            batch = (
                await conn.execute(
                    select(posts.c.id, posts.c.root_id)
                    .where(posts.c.channel_id == channel_id, posts.c.create_at < cutoff)
                    .order_by(posts.c.create_at, posts.c.id)
                    .limit(self.batch)
                )
            ).all()
            if not batch:
                return FINISHED
            ids = [r.id for r in batch]
            infos = (
                await conn.execute(
                    select(
                        file_infos.c.path, file_infos.c.thumbnail_path, file_infos.c.preview_path
                    ).where(file_infos.c.post_id.in_(ids))
                )
            ).all()
        await remove_stored(self.files, stored_paths(infos))
        gone = set(ids)
        roots = {r.root_id for r in batch if r.root_id and r.root_id not in gone}
        async with self.db.write() as conn:
            removed_reactions = await conn.execute(
                delete(reactions).where(reactions.c.post_id.in_(ids))
            )
            removed_files = await conn.execute(
                delete(file_infos).where(file_infos.c.post_id.in_(ids))
            )
            removed_posts = await conn.execute(delete(posts).where(posts.c.id.in_(ids)))
            # Who followed a deleted root, and their read state in it (Mattermost's
            # ThreadMemberships go with the post as well).
            await conn.execute(
                delete(thread_memberships).where(thread_memberships.c.post_id.in_(ids))
            )
            await recount_threads(conn, roots)
            await ctx.checkpoint(
                conn,
                deleted_posts=int(ctx.data["deleted_posts"]) + removed_posts.rowcount,
                deleted_reactions=int(ctx.data["deleted_reactions"]) + removed_reactions.rowcount,
                deleted_files=int(ctx.data["deleted_files"]) + removed_files.rowcount,
            )
        return MORE if len(batch) == self.batch else LAST

    async def _files(self, ctx: JobContext, cutoff: int) -> None:
        while True:
            ctx.check()
            async with self.db.read() as conn:
                batch = (
                    await conn.execute(
                        select(
                            file_infos.c.id,
                            file_infos.c.path,
                            file_infos.c.thumbnail_path,
                            file_infos.c.preview_path,
                        )
                        .where(file_infos.c.create_at < cutoff)
                        .order_by(file_infos.c.create_at, file_infos.c.id)
                        .limit(self.batch)
                    )
                ).all()
            if not batch:
                break
            await remove_stored(self.files, stored_paths(batch))
            async with self.db.write() as conn:
                removed = await conn.execute(
                    delete(file_infos).where(file_infos.c.id.in_([r.id for r in batch]))
                )
                await ctx.checkpoint(
                    conn, deleted_files=int(ctx.data["deleted_files"]) + removed.rowcount
                )
            if len(batch) < self.batch:
                break
            await self.sleep(self.settings.TimeBetweenBatchesMilliseconds / 1000)


async def recount_threads(conn: AsyncConnection, root_ids: Iterable[str]) -> None:
    """Sets `reply_count` and `last_reply_at` of each root from the replies it still has."""
    for root_id in sorted(root_ids):
        count, last = (
            await conn.execute(
                select(func.count(), func.coalesce(func.max(posts.c.create_at), 0)).where(
                    posts.c.root_id == root_id, posts.c.delete_at == 0
                )
            )
        ).one()
        await conn.execute(
            update(posts)
            .where(posts.c.id == root_id)
            .values(reply_count=int(count), last_reply_at=int(last))
        )
