"""Periodic jobs and abandoned ones: the scheduler, the reaper, and how the cluster status
shows who schedules.

Schedules. A `Schedule` cuts time into slots of `period_ms` starting at `offset_ms` past the
epoch (data retention: one a day at `DeletionJobStartTime`, UTC; cleanup: every
`JobSettings.CleanupIntervalSeconds`). Slot `n` is due from `n * period + offset` on. The job of a
slot carries (`schedule_key`, `schedule_slot`), unique per type in the table, so no interleaving
of leaders can create it twice.

The scheduler runs as the duty of its own lease, `job_scheduler`, which only nodes with
`JobSettings.RunScheduler` take: a node that must not schedule never becomes the scheduler, so
the Mattermost failure of a leader with the scheduler off (jobs silently never scheduled) cannot
happen while any node may schedule. Each round it checks its token inside the transaction that
inserts the due slots (`run_as_leader`), so a scheduler that lost the lease while paused creates
nothing. Slots missed while no node held the lease (a failover longer than the period) are
created late, up to `catch_up` of them, never skipped silently and never twice.

The reaper is a duty of the cluster leader (any node): a job whose worker stopped beating
(`last_activity_at` older than `JobSettings.StaleSeconds`) goes back to pending for another node,
or fails after `MaxAttempts` claims. The leader also watches the scheduler lease and says, in its
log and on `/api/v4/cluster/status`, when no node schedules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hubbub.cluster.leader import current_holder, run_as_leader
from hubbub.config import Settings
from hubbub.ids import now_ms
from hubbub.jobs.model import CLEANUP, DATA_RETENTION, Job, JobStatus
from hubbub.jobs.store import JobStore
from hubbub.store.db import Database

log = logging.getLogger("hubbub.jobs")

SCHEDULER_LEASE = "job_scheduler"
DAY_MS = 86_400_000

Wake = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


FIRST_GRACE_MS = 60_000


@dataclass(frozen=True)
class Schedule:
    """Slots of `period_ms` starting `offset_ms` after the epoch. The very first slot of a
    schedule (no job of it yet) is only created within `first_grace_ms` of its start, so a new
    cluster, or a daily job enabled in the afternoon, waits for the next start instead of running
    at once; from then on no slot is skipped."""

    job_type: str
    period_ms: int
    offset_ms: int = 0
    first_grace_ms: int = FIRST_GRACE_MS

    @property
    def key(self) -> str:
        return f"every {self.period_ms}ms from {self.offset_ms}ms"

    def slot_at(self, now: int) -> int:
        return (now - self.offset_ms) // self.period_ms

    def start_of(self, slot: int) -> int:
        return slot * self.period_ms + self.offset_ms

    def due(self, now: int, last: int | None, catch_up: int) -> list[int]:
        """The slots to create now, given the newest slot already created (`last`)."""
        current = self.slot_at(now)
        if last is None:
            grace = min(self.period_ms, self.first_grace_ms)
            return [current] if now - self.start_of(current) <= grace else []
        first = max(last + 1, current - catch_up + 1)
        return list(range(first, current + 1))


def schedules_from(settings: Settings) -> list[Schedule]:
    """What the settings ask to run periodically."""
    out = [Schedule(CLEANUP, int(settings.JobSettings.CleanupIntervalSeconds * 1000))]
    retention = settings.DataRetentionSettings
    if retention.EnableMessageDeletion or retention.EnableFileDeletion:
        hours, minutes = (int(x) for x in retention.DeletionJobStartTime.split(":"))
        out.append(
            Schedule(
                DATA_RETENTION,
                DAY_MS,
                offset_ms=(hours * 60 + minutes) * 60_000,
            )
        )
    return out


class Scheduler:
    """Creates due jobs; `run` is the duty of the `job_scheduler` lease."""

    def __init__(
        self,
        db: Database,
        store: JobStore,
        schedules: Sequence[Schedule],
        *,
        wake: Wake = _nothing,
        catch_up: int = 10,
        lease: str = SCHEDULER_LEASE,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.store = store
        self.schedules = tuple(schedules)
        self.wake = wake
        self.catch_up = catch_up
        self.lease = lease
        self.clock = clock

    async def run(self, token: int) -> list[Job]:
        """One round: creates every due slot's job, fenced by `token`."""
        now = self.clock()
        created: list[Job] = []
        async with self.db.write() as conn:
            await run_as_leader(conn, token, self.lease)
            for schedule in self.schedules:
                last = await self.store.last_slot(conn, schedule.job_type, schedule.key)
                for slot in schedule.due(now, last, self.catch_up):
                    job = await self.store.schedule(
                        conn, schedule.job_type, schedule.key, slot, now
                    )
                    if job is not None:
                        created.append(job)
        for job in created:
            log.info(
                "job scheduled",
                extra={"job_id": job.id, "job_type": job.type, "slot": job.schedule_slot},
            )
        if created:
            await self.wake()
        return created


class Reaper:
    """Returns jobs whose node stopped beating to pending; `run` is a cluster leader duty."""

    def __init__(
        self,
        db: Database,
        store: JobStore,
        *,
        stale_seconds: float,
        max_attempts: int,
        wake: Wake = _nothing,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.store = store
        self.stale_ms = int(stale_seconds * 1000)
        self.max_attempts = max_attempts
        self.wake = wake
        self.clock = clock

    async def run(self, token: int) -> list[tuple[Job, JobStatus]]:
        now = self.clock()
        async with self.db.write() as conn:
            await run_as_leader(conn, token)
            reaped = await self.store.reap(conn, now, self.stale_ms, self.max_attempts)
        for job, target in reaped:
            log.warning(
                "job abandoned by its node (no heartbeat)",
                extra={
                    "job_id": job.id,
                    "job_type": job.type,
                    "worker": job.worker,
                    "attempts": job.attempts,
                    "silent_seconds": round((now - job.last_activity_at) / 1000, 1),
                    "now": target.value,
                },
            )
        if any(target == JobStatus.PENDING for _, target in reaped):
            await self.wake()
        return reaped


class SchedulerWatch:
    """A cluster leader duty: logs when no node holds the scheduler lease (every node has
    `RunScheduler` off, or the ones that have it are down) and when one holds it again. A
    leader that may not schedule itself (`run_scheduler` false) says so once per term, naming
    the node that does."""

    def __init__(
        self,
        db: Database,
        *,
        patience_seconds: float,
        run_scheduler: bool = True,
        lease: str = SCHEDULER_LEASE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.patience = patience_seconds
        self.run_scheduler = run_scheduler
        self.lease = lease
        self.monotonic = monotonic
        self._missing_since: float | None = None
        self._warned = False
        self._term: int | None = None

    async def run(self, token: int) -> None:
        holder = await current_holder(self.db, self.lease)
        if not self.run_scheduler and self._term != token:
            # A new term of this node as leader: Mattermost's leader would schedule nothing
            # here; hubbub's scheduler lease is held by a node that may schedule.
            self._term = token
            log.warning(
                LEADER_DOES_NOT_SCHEDULE,
                extra={"scheduler": holder or "none yet"},
            )
        if holder is not None:
            if self._warned:
                log.info("a node schedules jobs again", extra={"scheduler": holder})
            self._missing_since, self._warned = None, False
            return
        now = self.monotonic()
        if self._missing_since is None:
            self._missing_since = now
        if not self._warned and now - self._missing_since >= self.patience:
            self._warned = True
            log.error(NO_SCHEDULER)


LEADER_DOES_NOT_SCHEDULE = (
    "this node leads the cluster but does not schedule jobs (JobSettings.RunScheduler is "
    "false here); the node holding the job_scheduler lease schedules them"
)

NO_SCHEDULER = (
    "no node schedules jobs: JobSettings.RunScheduler is false on every running node, so "
    "periodic jobs (data retention, cleanup) are not created; set it to true on at least one"
)


def annotate_status(view: list[dict[str, Any]], scheduler: str | None) -> list[dict[str, Any]]:
    """Adds `job_scheduler` to each node of the cluster status, and says on the leader's entry
    (every entry if none leads) when no node holds the scheduler lease."""
    leaders = [node for node in view if node.get("leader")] or view
    for node in view:
        node["job_scheduler"] = node["id"] == scheduler
    if scheduler is None:
        for node in leaders:
            node.setdefault("reasons", []).append(NO_SCHEDULER)
    return view
