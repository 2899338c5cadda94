"""The worker side of the job server: claim pending jobs, run them, keep them alive.

`JobServer` runs on every node with `JobSettings.RunJobs`. It looks for pending jobs every
`PollSeconds`, and at once when any node announces new ones (`JobsPending` on the cluster bus:
a job created through the API, by the scheduler, or returned by the reaper). It runs at most one
job of each type at a time. While a job runs, a heartbeat task writes the row's
`last_activity_at` every `HeartbeatSeconds` and reads its status back: `cancel_requested` makes
the handler stop at its next `check()`; a row that is no longer this claim's (the reaper gave it
to another node after a pause longer than `StaleSeconds`) makes it stop without writing anything.

A handler gets a `JobContext`: `check()` between steps, `checkpoint(conn, ...)` to record
progress in the same transaction as the work it describes (a resumed run starts from there), and
`progress(...)` for a report with nothing to commit beside it. Whatever it raises ends the job as
`error` with the reason in `data["error"]`. On a clean stop the node hands its running jobs back
(pending) instead of leaving them to the reaper.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.bus import BusMessage, ClusterBus
from hubbub.ids import now_ms
from hubbub.jobs.model import Claim, Job, JobCanceled, JobData, JobLost, JobStatus, string_data
from hubbub.jobs.store import JobStore
from hubbub.lifecycle import Component
from hubbub.tasks import stop_task

log = logging.getLogger("hubbub.jobs")


@dataclass(frozen=True)
class JobsPending(BusMessage, kind="jobs_pending"):
    """There are new pending jobs: workers look now instead of at their next poll."""

    job_type: str = ""


class JobContext:
    """What a running handler sees of its job."""

    def __init__(
        self, job: Job, claim: Claim, store: JobStore, clock: Callable[[], int] = now_ms
    ) -> None:
        self.job = job
        self.claim = claim
        self.store = store
        self.clock = clock
        self.data: JobData = dict(job.data)
        self.progress_value = job.progress
        self._cancel = False
        self._lost = False

    @property
    def resumed(self) -> bool:
        """True when an earlier attempt ran (its checkpoint, if any, is in `data`)."""
        return self.claim.attempt > 1

    def observe(self, status: str) -> None:
        if status == JobStatus.CANCEL_REQUESTED:
            self._cancel = True

    def lose(self) -> None:
        self._lost = True

    def check(self) -> None:
        """Raises `JobLost` or `JobCanceled` when the job must stop; call it between steps."""
        if self._lost:
            raise JobLost(f"job {self.job.id} was given to another worker")
        if self._cancel:
            raise JobCanceled(f"job {self.job.id} was canceled")

    def set(self, **values: Any) -> None:
        """Changes `data` in memory; written with the next checkpoint, progress or result."""
        self.data.update(string_data(values))

    async def checkpoint(
        self, conn: AsyncConnection, progress: int | None = None, **values: Any
    ) -> None:
        """Records `values` (and `progress`) in the job row inside `conn`'s transaction, so they
        commit with the work they describe; raises `JobLost` (rolling it back) if the job is no
        longer this worker's."""
        self.check()
        self.set(**values)
        if progress is not None:
            self.progress_value = progress
        status = await self.store.save(
            conn, self.claim, self.clock(), progress=progress, data=self.data
        )
        self.observe(status)

    async def progress(self, progress: int | None = None, **values: Any) -> None:
        """A progress report in a transaction of its own."""
        async with self.store.db.write() as conn:
            await self.checkpoint(conn, progress, **values)


class JobHandler(abc.ABC):
    """One job type: checks a request's data and runs a job."""

    job_type: ClassVar[str]
    # Whether a retried run continues from the last checkpoint (else it starts over).
    resumable: ClassVar[bool] = False

    def check_request(self, data: Mapping[str, str]) -> JobData:
        """The data a new job of this type starts with; raises `AppError` when it is unusable."""
        return dict(data)

    @abc.abstractmethod
    async def run(self, ctx: JobContext) -> JobData:
        """Does the work; returns data to add to the job's (counts, results)."""


class JobServer(Component):
    """Claims and runs jobs on this node (when `enabled`: `JobSettings.RunJobs`)."""

    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[str, JobHandler],
        bus: ClusterBus,
        *,
        node_id: str,
        enabled: bool,
        poll_seconds: float,
        heartbeat_seconds: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.bus = bus
        self.node_id = node_id
        self.enabled = enabled
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.clock = clock
        self.running: dict[str, tuple[JobContext, asyncio.Task[None]]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        bus.subscribe(JobsPending, self._on_pending)

    async def _on_pending(self, message: JobsPending) -> None:
        self._wakeup.set()

    async def announce(self, job_type: str = "") -> None:
        """Tells every node's workers (this one's too) that there are pending jobs."""
        self._wakeup.set()
        try:
            await self.bus.publish(JobsPending(job_type))
        except Exception:
            # The others find the job at their next poll.
            log.warning("could not announce pending jobs on the cluster bus", exc_info=True)

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="job-server")
            log.info(
                "job server started",
                extra={"job_types": sorted(self.handlers), "poll_seconds": self.poll_seconds},
            )

    async def _loop(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not look for pending jobs", exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wakeup.wait()

    async def poll(self) -> list[Job]:
        """Claims pending jobs of every type this node is not running yet; starts them."""
        started: list[Job] = []
        while True:
            free = set(self.handlers) - {ctx.job.type for ctx, _ in self.running.values()}
            job = await self.store.claim(self.node_id, free, self.clock())
            if job is None:
                return started
            self._start_job(job)
            started.append(job)

    def _start_job(self, job: Job) -> None:
        ctx = JobContext(job, Claim(job.id, self.node_id, job.attempts), self.store, self.clock)
        task = asyncio.create_task(self._run(ctx), name=f"job-{job.type}-{job.id}")
        self.running[job.id] = (ctx, task)
        task.add_done_callback(lambda _: self.running.pop(job.id, None))

    async def _run(self, ctx: JobContext) -> None:
        job, handler = ctx.job, self.handlers[ctx.job.type]
        log.info(
            "job started",
            extra={"job_id": job.id, "job_type": job.type, "attempt": ctx.claim.attempt},
        )
        beat = asyncio.create_task(self._beat(ctx), name=f"job-heartbeat-{job.id}")
        status, result = JobStatus.SUCCESS, {}
        try:
            result = await handler.run(ctx)
            ctx.check()
        except JobLost as exc:
            log.warning(
                "job taken from this node; stopped", extra={"job_id": job.id, "why": str(exc)}
            )
            return
        except JobCanceled:
            status = JobStatus.CANCELED
        except Exception as exc:
            status = JobStatus.ERROR
            ctx.set(error=f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            log.exception("job failed", extra={"job_id": job.id, "job_type": job.type})
        finally:
            await stop_task(beat)
        ctx.set(**result)
        try:
            done = await self.store.finish(
                ctx.claim,
                status,
                self.clock(),
                progress=100 if status == JobStatus.SUCCESS else None,
                data=ctx.data,
            )
        except Exception:
            # The reaper hands the job to another node: its result was not recorded.
            log.exception("could not record a job's result", extra={"job_id": job.id})
            return
        log.info(
            "job finished" if done else "job finished, but it was no longer this node's",
            extra={"job_id": job.id, "job_type": job.type, "status": status.value, **ctx.data},
        )

    async def _beat(self, ctx: JobContext) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                ctx.observe(await self.store.heartbeat(ctx.claim, self.clock()))
            except JobLost:
                ctx.lose()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("job heartbeat failed", extra={"job_id": ctx.job.id}, exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        for job_id, (ctx, task) in list(self.running.items()):
            await stop_task(task)
            try:
                if await self.store.release(ctx.claim, self.clock()):
                    log.info("job handed back on shutdown", extra={"job_id": job_id})
            except Exception:
                log.warning("could not hand a job back; the reaper will", exc_info=True)
        self.running.clear()
