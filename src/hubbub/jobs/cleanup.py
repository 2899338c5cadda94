"""`cleanup`: removes what nobody needs any more, in short batches.

- sessions that expired (`expires_at` passed; sessions of access tokens never expire);
- one-time tokens (password reset) past their expiry: `TOKEN_EXPIRY_MS` by type, else
  Mattermost's 48 hours (expired tokens were otherwise only removed when another reset was
  asked for);
- finished jobs older than `JobSettings.CleanupJobsThresholdDays` (-1 keeps them), with the
  files they produced;
- bulk export files older than `ExportSettings.RetentionDays` (their jobs stay, no longer
  downloadable) and import files of finished imports older than `ImportSettings.RetentionDays`;
- outbox rows older than `OUTBOX_RETENTION_HOURS`, published or not: no event log keeps events
  that long, so such a row can never be delivered or needed for ordering again.

Nothing here needs a checkpoint: each step deletes what matches, and a second run finds less.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar

from sqlalchemy import delete, select, update

from hubbub.config import Settings
from hubbub.files import FileBackend
from hubbub.ids import now_ms
from hubbub.jobs.model import CLEANUP, EXPORT_PROCESS, FINISHED, IMPORT_PROCESS, JobData
from hubbub.jobs.store import JobStore
from hubbub.jobs.worker import JobContext, JobHandler
from hubbub.services import password_reset
from hubbub.store.db import Database
from hubbub.store.tables import jobs, outbox, sessions, tokens

log = logging.getLogger("hubbub.jobs")

DAY_MS = 86_400_000
OUTBOX_RETENTION_HOURS = 24
BATCH = 1000
# How long a one-time token of a type stays usable; others: Mattermost's MaxTokenExpiryTime.
TOKEN_EXPIRY_MS = {password_reset.TOKEN_TYPE: password_reset.EXPIRY_MS}
OTHER_TOKEN_EXPIRY_MS = 48 * 3_600_000


class Cleanup(JobHandler):
    job_type: ClassVar[str] = CLEANUP

    def __init__(
        self,
        db: Database,
        store: JobStore,
        files: FileBackend,
        settings: Settings,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.store = store
        self.files = files
        self.settings = settings
        self.clock = clock

    async def run(self, ctx: JobContext) -> JobData:
        now = self.clock()
        counts = {
            "deleted_sessions": await self._sessions(ctx, now),
            "deleted_tokens": await self._tokens(ctx, now),
            "deleted_jobs": await self._jobs(ctx, now),
            "deleted_job_files": await self._job_files(ctx, now),
            "deleted_outbox_rows": await self._outbox(ctx, now),
        }
        return {key: str(value) for key, value in counts.items()}

    async def _sessions(self, ctx: JobContext, now: int) -> int:
        total = 0
        while True:
            ctx.check()
            async with self.db.write() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(sessions.c.id)
                            .where(sessions.c.expires_at > 0, sessions.c.expires_at < now)
                            .limit(BATCH)
                        )
                    ).scalars()
                )
                if ids:
                    await conn.execute(delete(sessions).where(sessions.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < BATCH:
                await ctx.progress(25)
                return total

    async def _tokens(self, ctx: JobContext, now: int) -> int:
        ctx.check()
        known = list(TOKEN_EXPIRY_MS)
        async with self.db.write() as conn:
            removed = 0
            for kind, expiry in TOKEN_EXPIRY_MS.items():
                result = await conn.execute(
                    delete(tokens).where(tokens.c.type == kind, tokens.c.create_at < now - expiry)
                )
                removed += result.rowcount
            result = await conn.execute(
                delete(tokens).where(
                    tokens.c.type.not_in(known),
                    tokens.c.create_at < now - OTHER_TOKEN_EXPIRY_MS,
                )
            )
            return removed + result.rowcount

    async def _jobs(self, ctx: JobContext, now: int) -> int:
        days = self.settings.JobSettings.CleanupJobsThresholdDays
        if days < 0:
            return 0
        total = 0
        while True:
            ctx.check()
            gone = await self.store.delete_finished(now - days * DAY_MS, BATCH)
            for job in gone:
                for key in ("export_file", "import_file"):
                    if job.data.get(key):
                        await self._remove(job.data[key])
            total += len(gone)
            if len(gone) < BATCH:
                await ctx.progress(50)
                return total

    async def _job_files(self, ctx: JobContext, now: int) -> int:
        """Export and import files past their retention; their jobs stay."""
        removed = 0
        for job_type, key, days in (
            (EXPORT_PROCESS, "export_file", self.settings.ExportSettings.RetentionDays),
            (IMPORT_PROCESS, "import_file", self.settings.ImportSettings.RetentionDays),
        ):
            ctx.check()
            async with self.db.read() as conn:
                rows = (
                    await conn.execute(
                        select(jobs.c.id, jobs.c.data).where(
                            jobs.c.type == job_type,
                            jobs.c.status.in_([s.value for s in FINISHED]),
                            jobs.c.create_at < now - days * DAY_MS,
                        )
                    )
                ).all()
            for row in rows:
                data = dict(row.data or {})
                if not data.get(key) or data.get(f"{key}_deleted") == "true":
                    continue
                await self._remove(data[key])
                data[f"{key}_deleted"] = "true"
                if key == "export_file":
                    data["is_downloadable"] = "false"
                async with self.db.write() as conn:
                    await conn.execute(update(jobs).where(jobs.c.id == row.id).values(data=data))
                removed += 1
        await ctx.progress(75)
        return removed

    async def _remove(self, path: str) -> None:
        try:
            await self.files.remove(path)
        except (OSError, ValueError):
            log.warning("could not remove a job's file", extra={"path": path}, exc_info=True)

    async def _outbox(self, ctx: JobContext, now: int) -> int:
        cutoff = now - OUTBOX_RETENTION_HOURS * 3_600_000
        total = 0
        while True:
            ctx.check()
            async with self.db.write() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(outbox.c.id).where(outbox.c.create_at < cutoff).limit(BATCH)
                        )
                    ).scalars()
                )
                if ids:
                    await conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < BATCH:
                return total
