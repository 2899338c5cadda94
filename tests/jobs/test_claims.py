"""Claim, fence, reap and schedule: the job table's rules with a clock moved by hand, on SQLite
and PostgreSQL. Two `Database` pools on one database stand for two nodes."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func, select

from hubbub.cluster.leader import Leader, NotLeader
from hubbub.errors import AppError
from hubbub.jobs.model import CLEANUP, DATA_RETENTION, Claim, JobLost, JobStatus
from hubbub.jobs.scheduler import (
    LEADER_DOES_NOT_SCHEDULE,
    NO_SCHEDULER,
    SCHEDULER_LEASE,
    Reaper,
    Schedule,
    Scheduler,
    SchedulerWatch,
    annotate_status,
)
from hubbub.jobs.store import JobStore
from hubbub.store.db import Database
from hubbub.store.tables import jobs
from tests.support.clock import FakeClock

STALE = 60.0


def leader(db: Database, holder: str, clock: FakeClock, name: str = "leader") -> Leader:
    return Leader(
        db,
        holder,
        name=name,
        lease_seconds=15,
        renew_seconds=5,
        clock=clock.wall,
        monotonic=clock.monotonic,
    )


async def test_each_pending_job_is_claimed_by_exactly_one_of_many_claimers(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    a, b = JobStore(databases[0]), JobStore(databases[1])
    created = {(await a.create(CLEANUP, {}, clock.wall())).id for _ in range(20)}

    async def claimer(store: JobStore, name: str) -> list[str]:
        got = []
        while (job := await store.claim(name, {CLEANUP}, clock.wall())) is not None:
            assert job.status == JobStatus.IN_PROGRESS and job.worker == name
            got.append(job.id)
        return got

    results = await asyncio.gather(*(claimer(s, f"w{i}") for i, s in enumerate([a, b] * 3)))
    claimed = [job_id for got in results for job_id in got]
    assert sorted(claimed) == sorted(created)  # every job once, none twice
    assert await a.claim("late", {CLEANUP}, clock.wall()) is None


async def test_claim_takes_only_the_types_asked_for_oldest_first(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    store = JobStore(databases[0])
    retention = await store.create(DATA_RETENTION, {}, clock.wall())
    clock.advance(1)
    first = await store.create(CLEANUP, {}, clock.wall())
    clock.advance(1)
    await store.create(CLEANUP, {}, clock.wall())
    assert await store.claim("w", set(), clock.wall()) is None
    got = await store.claim("w", {CLEANUP}, clock.wall())
    assert got is not None and got.id == first.id and got.attempts == 1
    assert got.start_at == clock.wall()
    assert (await store.get(retention.id)).status == JobStatus.PENDING


async def test_a_job_never_starts_before_it_was_created(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    # A worker reads its clock, then a job is created and committed before the worker's claim
    # runs (or another node's clock is ahead): the job starts when it was created, not earlier.
    store = JobStore(databases[0])
    read_before = clock.wall()
    clock.advance(0.002)
    job = await store.create(CLEANUP, {}, clock.wall())
    got = await store.claim("w", {CLEANUP}, read_before)
    assert got is not None and got.id == job.id
    assert got.start_at == job.create_at > read_before


async def test_a_reaped_job_goes_to_another_worker_and_fences_the_first(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    store, other = JobStore(databases[0]), JobStore(databases[1])
    job = await store.create(DATA_RETENTION, {"a": "1"}, clock.wall())
    claimed = await store.claim("node-a", {DATA_RETENTION}, clock.wall())
    assert claimed is not None
    first = Claim(job.id, "node-a", claimed.attempts)
    async with databases[0].write() as conn:
        await store.save(
            conn, first, clock.wall(), progress=40, data={"a": "1", "checkpoint": "c1"}
        )

    # A's heartbeats stop; within the stale window the reaper leaves the job alone.
    lead = leader(databases[1], "node-b", clock)
    assert await lead.try_acquire()
    token = lead.fencing_token()
    assert token is not None
    reaper = Reaper(databases[1], other, stale_seconds=STALE, max_attempts=3, clock=clock.wall)
    clock.advance(STALE - 1)
    assert await lead.try_acquire()
    assert await reaper.run(token) == []
    clock.advance(2)
    assert await lead.try_acquire()
    reaped = await reaper.run(token)
    assert [(j.id, target) for j, target in reaped] == [(job.id, JobStatus.PENDING)]

    again = await other.claim("node-b", {DATA_RETENTION}, clock.wall())
    assert again is not None and again.attempts == 2 and again.worker == "node-b"
    assert again.progress == 40 and again.data == {"a": "1", "checkpoint": "c1"}

    # A wakes up: every write it tries is refused, the new worker's are not.
    with pytest.raises(JobLost):
        await store.heartbeat(first, clock.wall())
    with pytest.raises(JobLost):
        async with databases[0].write() as conn:
            await store.save(conn, first, clock.wall(), data={"checkpoint": "stale"})
    assert not await store.finish(first, JobStatus.SUCCESS, clock.wall())
    second = Claim(job.id, "node-b", again.attempts)
    assert await other.heartbeat(second, clock.wall()) == JobStatus.IN_PROGRESS
    assert await other.finish(second, JobStatus.SUCCESS, clock.wall(), progress=100)
    done = await store.get(job.id)
    assert done.status == JobStatus.SUCCESS and done.data["checkpoint"] == "c1"


async def test_reaping_fails_a_job_after_max_attempts_and_ends_a_canceled_one(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    store = JobStore(databases[0])
    lead = leader(databases[0], "node-a", clock)
    reaper = Reaper(databases[0], store, stale_seconds=STALE, max_attempts=2, clock=clock.wall)
    job = await store.create(CLEANUP, {}, clock.wall())
    canceled = await store.create(DATA_RETENTION, {}, clock.wall())
    assert await store.claim("x", {DATA_RETENTION}, clock.wall()) is not None
    await store.request_cancel(canceled.id, clock.wall())
    outcomes = []
    for _ in range(2):
        assert await store.claim("x", {CLEANUP}, clock.wall()) is not None
        clock.advance(STALE + 1)
        assert await lead.try_acquire()
        token = lead.fencing_token()
        assert token is not None
        outcomes += [(j.id, target) for j, target in await reaper.run(token)]
    assert sorted(outcomes) == sorted(
        [
            (job.id, JobStatus.PENDING),
            (canceled.id, JobStatus.CANCELED),
            (job.id, JobStatus.ERROR),
        ]
    )
    failed = await store.get(job.id)
    assert failed.status == JobStatus.ERROR and "2 times" in failed.data["error"]
    assert (await store.get(canceled.id)).status == JobStatus.CANCELED


async def test_a_deposed_leader_cannot_reap(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    store = JobStore(databases[0])
    a, b = leader(databases[0], "a", clock), leader(databases[1], "b", clock)
    assert await a.try_acquire()
    old = a.fencing_token()
    assert old is not None
    job = await store.create(CLEANUP, {}, clock.wall())
    assert await store.claim("w", {CLEANUP}, clock.wall()) is not None
    clock.advance(STALE + 1)
    assert await b.try_acquire()
    with pytest.raises(NotLeader):
        await Reaper(
            databases[0], store, stale_seconds=STALE, max_attempts=3, clock=clock.wall
        ).run(old)
    assert (await store.get(job.id)).status == JobStatus.IN_PROGRESS


async def test_cancel_stops_pending_at_once_asks_running_and_refuses_finished(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    store = JobStore(databases[0])
    pending = await store.create(CLEANUP, {}, clock.wall())
    assert (await store.request_cancel(pending.id, clock.wall())).status == JobStatus.CANCELED
    running = await store.create(CLEANUP, {}, clock.wall())
    claimed = await store.claim("w", {CLEANUP}, clock.wall())
    assert claimed is not None and claimed.id == running.id
    asked = await store.request_cancel(running.id, clock.wall())
    assert asked.status == JobStatus.CANCEL_REQUESTED
    claim = Claim(running.id, "w", claimed.attempts)
    assert await store.heartbeat(claim, clock.wall()) == JobStatus.CANCEL_REQUESTED
    assert await store.finish(claim, JobStatus.CANCELED, clock.wall())
    with pytest.raises(AppError) as refused:
        await store.request_cancel(running.id, clock.wall())
    assert refused.value.status_code == 400
    with pytest.raises(AppError) as missing:
        await store.request_cancel("x" * 26, clock.wall())
    assert missing.value.status_code == 404


async def test_release_hands_a_job_back_for_the_next_worker(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    store = JobStore(databases[0])
    job = await store.create(CLEANUP, {}, clock.wall())
    claimed = await store.claim("w", {CLEANUP}, clock.wall())
    assert claimed is not None
    assert await store.release(Claim(job.id, "w", claimed.attempts), clock.wall())
    again = await store.claim("v", {CLEANUP}, clock.wall())
    assert again is not None and again.attempts == 2


# Schedules


def test_slots_come_due_at_their_start_and_missed_ones_are_caught_up() -> None:
    every_10s = Schedule(CLEANUP, 10_000)
    assert every_10s.slot_at(1_000_009_999) == 100_000 and every_10s.start_of(100_001) == (
        1_000_010_000
    )
    # Nothing yet: the current slot runs now (a grace of 10 s, the period, for the first one).
    assert every_10s.due(1_000_005_000, None, catch_up=10) == [100_000]
    assert every_10s.due(1_000_009_999, 100_000, catch_up=10) == []
    assert every_10s.due(1_000_010_000, 100_000, catch_up=10) == [100_001]
    # Three slots passed while no node scheduled: all three, once each, capped by catch_up.
    assert every_10s.due(1_000_040_000, 100_001, catch_up=10) == [100_002, 100_003, 100_004]
    assert every_10s.due(1_000_040_000, 100_001, catch_up=2) == [100_003, 100_004]
    # A daily job enabled long after its start time waits for the next day.
    daily = Schedule(DATA_RETENTION, 86_400_000, offset_ms=7_200_000)
    day = 20_000 * 86_400_000
    assert daily.due(day + 7_200_000 + 60_000, None, catch_up=1) == [20_000]
    assert daily.due(day + 7_200_000 + 3_600_000, None, catch_up=1) == []
    assert daily.due(day + 7_200_000 - 1, None, catch_up=1) == []


async def slot_count(db: Database) -> dict[int, int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(jobs.c.schedule_slot, func.count())
            .where(jobs.c.type == CLEANUP)
            .group_by(jobs.c.schedule_slot)
        )
        return {int(slot): int(n) for slot, n in rows}


async def test_scheduling_creates_each_slot_once_across_leader_changes(
    databases: tuple[Database, Database], clock: FakeClock
) -> None:
    period = 10.0
    schedules = [Schedule(CLEANUP, int(period * 1000))]
    stores = [JobStore(db) for db in databases]
    schedulers = [
        Scheduler(db, store, schedules, clock=clock.wall)
        for db, store in zip(databases, stores, strict=True)
    ]
    leases = [
        leader(db, name, clock, SCHEDULER_LEASE)
        for db, name in zip(databases, ("a", "b"), strict=True)
    ]
    assert await leases[0].try_acquire()
    token_a = leases[0].fencing_token()
    assert token_a is not None
    first = schedules[0].slot_at(clock.wall())
    assert [j.schedule_slot for j in await schedulers[0].run(token_a)] == [first]
    assert await schedulers[0].run(token_a) == []  # same slot: nothing new
    for _ in range(3):
        clock.advance(period)
        assert await leases[0].try_acquire()
        await schedulers[0].run(token_a)

    # A stops renewing (killed) for longer than two periods; B takes the lease and catches up.
    clock.advance(30)
    assert await leases[1].try_acquire()
    token_b = leases[1].fencing_token()
    assert token_b is not None and token_b > token_a
    caught_up = await schedulers[1].run(token_b)
    assert [j.schedule_slot for j in caught_up] == [first + 4, first + 5, first + 6]
    # A, paused rather than dead, wakes up and tries its round: fenced out.
    with pytest.raises(NotLeader):
        await schedulers[0].run(token_a)
    # Even a double insert that got past the fence would hit the unique slot key.
    async with databases[0].write() as conn:
        assert await stores[0].schedule(conn, CLEANUP, schedules[0].key, first + 6, 0) is None
    counts = await slot_count(databases[0])
    assert counts == {slot: 1 for slot in range(first, first + 7)}


def test_the_status_names_the_scheduler_and_says_when_there_is_none() -> None:
    view = [
        {"id": "a", "leader": True, "reasons": []},
        {"id": "b", "leader": False, "reasons": []},
    ]
    annotated = annotate_status([dict(n, reasons=[]) for n in view], "b")
    assert [n["job_scheduler"] for n in annotated] == [False, True]
    assert all(n["reasons"] == [] for n in annotated)
    orphaned = annotate_status([dict(n, reasons=[]) for n in view], None)
    assert orphaned[0]["reasons"] and "RunScheduler" in orphaned[0]["reasons"][0]
    assert orphaned[1]["reasons"] == []


async def test_a_leader_that_may_not_schedule_says_so_and_names_the_scheduler(
    databases: tuple[Database, Database], caplog: pytest.LogCaptureFixture
) -> None:
    here, there = databases
    caplog.set_level(logging.INFO, logger="hubbub.jobs")
    watch = SchedulerWatch(here, patience_seconds=0, run_scheduler=False)

    def said() -> list[tuple[str, object]]:
        out = [(r.getMessage(), getattr(r, "scheduler", None)) for r in caplog.records]
        caplog.clear()
        return out

    await watch.run(1)  # leader's first term; no node schedules
    assert said() == [(LEADER_DOES_NOT_SCHEDULE, "none yet"), (NO_SCHEDULER, None)]
    await watch.run(1)
    assert said() == []  # said once

    lease = Leader(there, "b", name=SCHEDULER_LEASE, lease_seconds=15, renew_seconds=5)
    assert await lease.try_acquire()
    await watch.run(1)
    assert said() == [("a node schedules jobs again", "b")]
    await watch.run(2)  # a new term as leader: said again, with the node that schedules
    assert said() == [(LEADER_DOES_NOT_SCHEDULE, "b")]

    scheduling = SchedulerWatch(here, patience_seconds=0, run_scheduler=True)
    await scheduling.run(3)
    assert said() == []
