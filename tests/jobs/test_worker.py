"""The worker: runs claimed jobs, reports progress, stops on cancel, notices when its job was
given away, and hands jobs back on a clean stop. Real database, real time, short intervals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from hubbub.cluster.bus import MemoryBus
from hubbub.ids import now_ms
from hubbub.jobs.model import CLEANUP, JobData, JobStatus
from hubbub.jobs.service import JobsService
from hubbub.jobs.store import JobStore
from hubbub.jobs.worker import JobContext, JobHandler, JobServer
from hubbub.store.db import Database
from tests.support.wait import wait_until_async


class Steps(JobHandler):
    """Counts steps to `data["steps"]`, one checkpoint per step; waits on `gate` between steps
    when one is given; raises if `data["fail"]`."""

    job_type: ClassVar[str] = CLEANUP
    resumable: ClassVar[bool] = True

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.attempts: list[int] = []

    async def run(self, ctx: JobContext) -> JobData:
        self.attempts.append(ctx.claim.attempt)
        self.started.set()
        total = int(ctx.data.get("steps", "3"))
        done = int(ctx.data.get("done", "0"))
        while done < total:
            if self.gate is not None:
                while not self.gate.is_set():
                    ctx.check()
                    await asyncio.sleep(0.01)
            done += 1
            async with ctx.store.db.write() as conn:
                await ctx.checkpoint(conn, progress=100 * done // total, done=done)
            if ctx.data.get("fail") == str(done):
                raise RuntimeError(f"step {done} broke")
        return {"result": f"{done} steps"}


@pytest.fixture
async def db(databases: tuple[Database, Database]) -> Database:
    return databases[0]


@pytest.fixture
async def server(db: Database) -> AsyncIterator[tuple[JobServer, Steps, JobsService]]:
    handler = Steps()
    store = JobStore(db)
    bus = MemoryBus("node-a")
    worker = JobServer(
        store,
        {CLEANUP: handler},
        bus,
        node_id="node-a",
        enabled=True,
        poll_seconds=30,  # longer than any test: only the announcement wakes it
        heartbeat_seconds=0.05,
    )
    service = JobsService(store, worker.handlers, files=None, announce=worker.announce)  # type: ignore[arg-type]
    await worker.start()
    try:
        yield worker, handler, service
    finally:
        await worker.stop()


async def status_of(service: JobsService, job_id: str) -> str:
    return (await service.get(None, job_id)).status


async def test_a_created_job_runs_at_once_and_records_its_result(
    server: tuple[JobServer, Steps, JobsService],
) -> None:
    _, _, service = server
    job = await service.create(None, CLEANUP, {"steps": "4"})
    assert job.status == JobStatus.PENDING

    async def done() -> bool:
        return await status_of(service, job.id) == JobStatus.SUCCESS

    await wait_until_async(done, 10, "the job to succeed")
    finished = await service.get(None, job.id)
    assert finished.progress == 100 and finished.start_at >= job.create_at
    assert finished.data == {"steps": "4", "done": "4", "result": "4 steps"}


async def test_a_failing_job_records_why(server: tuple[JobServer, Steps, JobsService]) -> None:
    _, _, service = server
    job = await service.create(None, CLEANUP, {"steps": "4", "fail": "2"})

    async def failed() -> bool:
        return await status_of(service, job.id) == JobStatus.ERROR

    await wait_until_async(failed, 10, "the job to fail")
    data = (await service.get(None, job.id)).data
    assert data["error"] == "step 2 broke" and data["done"] == "2"


async def test_cancel_stops_a_running_job(server: tuple[JobServer, Steps, JobsService]) -> None:
    _, handler, service = server
    handler.gate = asyncio.Event()
    job = await service.create(None, CLEANUP, {"steps": "3"})
    await asyncio.wait_for(handler.started.wait(), 10)
    assert (await service.cancel(None, job.id)).status == JobStatus.CANCEL_REQUESTED

    async def canceled() -> bool:
        return await status_of(service, job.id) == JobStatus.CANCELED

    await wait_until_async(canceled, 10, "the worker to see the cancel and stop")
    assert (await service.get(None, job.id)).data.get("done") is None


async def test_a_worker_whose_job_was_given_away_stops_without_writing(
    server: tuple[JobServer, Steps, JobsService], db: Database
) -> None:
    worker, handler, service = server
    handler.gate = asyncio.Event()
    job = await service.create(None, CLEANUP, {"steps": "2"})
    await asyncio.wait_for(handler.started.wait(), 10)
    # What the reaper and another node do while this one is paused: back to pending, claimed.
    store = JobStore(db)
    async with db.write() as conn:
        from sqlalchemy import update

        from hubbub.store.tables import jobs

        await conn.execute(
            update(jobs).where(jobs.c.id == job.id).values(status="pending", worker="")
        )
    other = await store.claim("node-b", {CLEANUP}, now_ms())
    assert other is not None and other.attempts == 2

    async def gone() -> bool:
        return job.id not in worker.running

    await wait_until_async(gone, 10, "the first worker to notice and stop")
    handler.gate.set()
    current = await service.get(None, job.id)
    assert current.status == JobStatus.IN_PROGRESS and current.worker == "node-b"
    assert "done" not in current.data


async def test_a_clean_stop_hands_the_running_job_back(
    server: tuple[JobServer, Steps, JobsService],
) -> None:
    worker, handler, service = server
    handler.gate = asyncio.Event()
    job = await service.create(None, CLEANUP, {"steps": "2"})
    await asyncio.wait_for(handler.started.wait(), 10)
    await worker.stop()
    back = await service.get(None, job.id)
    assert back.status == JobStatus.PENDING and back.worker == "" and back.attempts == 1
