"""The `jobs` table: every statement that creates, claims, fences, finishes, reaps or schedules
a job, each a single atomic statement (docs/jobs.md).

Claiming is one UPDATE of the oldest pending row that returns it: on PostgreSQL the row is picked
with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different rows instead of queueing
behind one; on SQLite the write transaction already excludes every other writer. A claim adds
one to `attempts`, and every later write of the worker requires that the row still carries its
attempt and a running status (`Claim`): once the reaper has returned the job to pending, or
another worker has claimed it, the old worker's heartbeat, checkpoint and result change nothing
and tell it so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.errors import AppError, not_found
from hubbub.ids import new_id
from hubbub.jobs.model import FINISHED, RUNNING, Claim, Job, JobLost, JobStatus, string_data
from hubbub.store.db import Database
from hubbub.store.tables import jobs

c = jobs.c


def _fence(claim: Claim) -> ColumnElement[bool]:
    return and_(
        c.id == claim.job_id,
        c.worker == claim.worker,
        c.attempts == claim.attempt,
        c.status.in_(list(RUNNING)),
    )


def new_job_row(
    job_type: str,
    data: Mapping[str, Any],
    now: int,
    *,
    schedule_key: str | None = None,
    schedule_slot: int | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "type": job_type,
        "priority": 0,
        "create_at": now,
        "start_at": 0,
        "last_activity_at": now,
        "status": JobStatus.PENDING.value,
        "progress": 0,
        "data": string_data(data),
        "worker": "",
        "attempts": 0,
        "schedule_key": schedule_key,
        "schedule_slot": schedule_slot,
    }


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Reading

    async def get(self, job_id: str) -> Job:
        async with self.db.read() as conn:
            row = (await conn.execute(select(jobs).where(c.id == job_id))).first()
        if row is None:
            raise not_found("job", "app.job.get.app_error")
        return Job.from_row(row)

    async def page(self, page: int, per_page: int, job_type: str | None = None) -> list[Job]:
        """Newest first, as Mattermost lists them."""
        query = select(jobs).order_by(c.create_at.desc(), c.id.desc())
        if job_type is not None:
            query = query.where(c.type == job_type)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.offset(page * per_page).limit(per_page))).all()
        return [Job.from_row(r) for r in rows]

    # Creating

    async def create(self, job_type: str, data: Mapping[str, Any], now: int) -> Job:
        row = new_job_row(job_type, data, now)
        async with self.db.write() as conn:
            await conn.execute(insert(jobs).values(**row))
        return Job.from_row(row)

    @staticmethod
    async def schedule(
        conn: AsyncConnection, job_type: str, key: str, slot: int, now: int
    ) -> Job | None:
        """Creates the job of schedule slot (`key`, `slot`) unless it exists (then None)."""
        row = new_job_row(job_type, {}, now, schedule_key=key, schedule_slot=slot)
        insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        created = (
            await conn.execute(
                insert_(jobs)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["type", "schedule_key", "schedule_slot"])
                .returning(c.id)
            )
        ).first()
        return None if created is None else Job.from_row(row)

    @staticmethod
    async def last_slot(conn: AsyncConnection, job_type: str, key: str) -> int | None:
        found = (
            await conn.execute(
                select(func.max(c.schedule_slot)).where(c.type == job_type, c.schedule_key == key)
            )
        ).scalar_one_or_none()
        return None if found is None else int(found)

    # The worker's side

    async def claim(self, worker: str, types: Collection[str], now: int) -> Job | None:
        """Takes the oldest pending job of one of `types` for `worker`, or None."""
        if not types:
            return None
        async with self.db.write() as conn:
            pick = (
                select(c.id)
                .where(c.status == JobStatus.PENDING.value, c.type.in_(sorted(types)))
                .order_by(c.priority.desc(), c.create_at, c.id)
                .limit(1)
            )
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            row = (
                await conn.execute(
                    update(jobs)
                    .where(c.id == pick.scalar_subquery(), c.status == JobStatus.PENDING.value)
                    .values(
                        status=JobStatus.IN_PROGRESS.value,
                        worker=worker,
                        attempts=c.attempts + 1,
                        # never before its creation: the worker read its clock before a
                        # job created a moment later committed (or the node clocks differ)
                        start_at=func.coalesce(
                            func.nullif(c.start_at, 0),
                            case((c.create_at > now, c.create_at), else_=now),
                        ),
                        last_activity_at=now,
                    )
                    .returning(*jobs.c)
                )
            ).first()
        return None if row is None else Job.from_row(row)

    async def heartbeat(self, claim: Claim, now: int) -> str:
        """Marks the job alive; returns its status (`cancel_requested` asks the worker to stop).
        Raises `JobLost` when the job is no longer this claim's."""
        async with self.db.write() as conn:
            return await self.save(conn, claim, now)

    @staticmethod
    async def save(
        conn: AsyncConnection,
        claim: Claim,
        now: int,
        *,
        progress: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        """Writes progress and data (a checkpoint) inside the caller's transaction `conn`, so a
        checkpoint commits with the work it records. Raises `JobLost` (the caller's transaction
        then rolls back) when the job is no longer this claim's; returns the job's status."""
        values: dict[str, Any] = {"last_activity_at": now}
        if progress is not None:
            values["progress"] = max(0, min(100, int(progress)))
        if data is not None:
            values["data"] = string_data(data)
        status = (
            await conn.execute(
                update(jobs).where(_fence(claim)).values(**values).returning(c.status)
            )
        ).scalar_one_or_none()
        if status is None:
            raise JobLost(f"job {claim.job_id} is no longer held by attempt {claim.attempt}")
        return str(status)

    async def finish(
        self,
        claim: Claim,
        status: JobStatus,
        now: int,
        *,
        progress: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Ends the run with `status`; false when the job was no longer this claim's."""
        values: dict[str, Any] = {"status": status.value, "last_activity_at": now}
        if progress is not None:
            values["progress"] = max(0, min(100, int(progress)))
        if data is not None:
            values["data"] = string_data(data)
        async with self.db.write() as conn:
            result = await conn.execute(update(jobs).where(_fence(claim)).values(**values))
        return bool(result.rowcount)

    async def release(self, claim: Claim, now: int) -> bool:
        """Hands a job back at once (its node is stopping cleanly): pending again for another
        worker, or canceled if a cancel was asked meanwhile."""
        async with self.db.write() as conn:
            for current, target in (
                (JobStatus.IN_PROGRESS, JobStatus.PENDING),
                (JobStatus.CANCEL_REQUESTED, JobStatus.CANCELED),
            ):
                result = await conn.execute(
                    update(jobs)
                    .where(_fence(claim), c.status == current.value)
                    .values(status=target.value, worker="", last_activity_at=now)
                )
                if result.rowcount:
                    return True
        return False

    # Administrators

    async def request_cancel(self, job_id: str, now: int) -> Job:
        """A pending job is canceled at once; a running one is asked to stop (its worker sees
        `cancel_requested` at its next heartbeat). A finished job cannot be canceled."""
        async with self.db.write() as conn:
            for current, target in (
                (JobStatus.PENDING, JobStatus.CANCELED),
                (JobStatus.IN_PROGRESS, JobStatus.CANCEL_REQUESTED),
                (JobStatus.CANCEL_REQUESTED, JobStatus.CANCEL_REQUESTED),
            ):
                row = (
                    await conn.execute(
                        update(jobs)
                        .where(c.id == job_id, c.status == current.value)
                        .values(status=target.value, last_activity_at=now)
                        .returning(*jobs.c)
                    )
                ).first()
                if row is not None:
                    return Job.from_row(row)
            exists = (await conn.execute(select(c.status).where(c.id == job_id))).first()
        if exists is None:
            raise not_found("job", "app.job.get.app_error")
        raise AppError(
            "jobs.request_cancellation.status.error",
            f"The job cannot be canceled: it has already finished ({exists.status}).",
            400,
        )

    # The leader's side

    @staticmethod
    async def reap(
        conn: AsyncConnection, now: int, stale_ms: int, max_attempts: int
    ) -> list[tuple[Job, JobStatus]]:
        """Inside the leader's fenced transaction: every running job whose heartbeat is older
        than `stale_ms` goes back to pending (canceled if a cancel was asked, error after
        `max_attempts` claims). Returns each job as it was and its new status."""
        rows = (
            await conn.execute(
                select(jobs).where(c.status.in_(list(RUNNING)), c.last_activity_at < now - stale_ms)
            )
        ).all()
        out: list[tuple[Job, JobStatus]] = []
        for row in rows:
            job = Job.from_row(row)
            data = dict(job.data)
            values: dict[str, Any] = {"last_activity_at": now}
            if job.status == JobStatus.CANCEL_REQUESTED:
                target = JobStatus.CANCELED
            elif job.attempts >= max_attempts:
                target = JobStatus.ERROR
                data["error"] = (
                    f"the node running the job stopped sending heartbeats, {job.attempts} "
                    f"times (JobSettings.MaxAttempts is {max_attempts})"
                )
                values["data"] = data
            else:
                target = JobStatus.PENDING
                values["worker"] = ""
            values["status"] = target.value
            # Unchanged since it was read: a heartbeat landing meanwhile keeps the job running.
            result = await conn.execute(
                update(jobs)
                .where(
                    c.id == job.id,
                    c.attempts == job.attempts,
                    c.status == job.status,
                    c.last_activity_at == job.last_activity_at,
                )
                .values(**values)
            )
            if result.rowcount:
                out.append((job, target))
        return out

    async def delete_finished(self, before: int, limit: int = 1000) -> list[Job]:
        """Deletes up to `limit` finished jobs created before `before`; returns them."""
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(c.status.in_([s.value for s in FINISHED]), c.create_at < before)
                    .order_by(c.create_at)
                    .limit(limit)
                )
            ).all()
            if rows:
                await conn.execute(delete(jobs).where(c.id.in_([r.id for r in rows])))
        return [Job.from_row(r) for r in rows]
