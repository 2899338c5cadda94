"""The leader lease and its fencing token, on SQLite and on a real PostgreSQL.

Two `Leader`s on one database stand for two nodes. Most tests drive the lease by hand with a
shared fake clock (no waiting for a lease to run out); one pauses a real leader process with
SIGSTOP and checks that, once resumed, its work is refused; one shows on PostgreSQL that a
takeover waits for work the old leader had already fenced.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, text
from sqlalchemy import select as sql_select

from hubbub.cluster.leader import Leader, NotLeader, current_holder, run_as_leader
from hubbub.config import LoadedConfig
from hubbub.store.db import Database
from hubbub.store.migrate import migrate
from hubbub.store.tables import leases, systems
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.wait import GiveUp, wait_until_async

LEASE = 15.0
RENEW = 5.0


class FakeClock:
    """Wall-clock milliseconds (written into the lease) and a monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000
        self.mono = 1000.0

    def wall(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
        self.mono += seconds


@pytest.fixture
async def databases(node_config: LoadedConfig) -> AsyncIterator[tuple[Database, Database]]:
    """Two connections pools on one fresh database, as two nodes would have."""
    first = Database(node_config.settings.SqlSettings)
    second = Database(node_config.settings.SqlSettings)
    await migrate(first)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def pair(dbs: tuple[Database, Database], clock: FakeClock) -> tuple[Leader, Leader]:
    def make(db: Database, holder: str) -> Leader:
        return Leader(
            db,
            holder,
            lease_seconds=LEASE,
            renew_seconds=RENEW,
            clock=clock.wall,
            monotonic=clock.monotonic,
        )

    return make(dbs[0], "node-a"), make(dbs[1], "node-b")


async def test_only_one_of_two_contenders_leads(databases: tuple[Database, Database]) -> None:
    clock = FakeClock()
    a, b = pair(databases, clock)
    results = await asyncio.gather(a.try_acquire(), b.try_acquire())
    assert sorted(results) == [False, True]
    winner, loser = (a, b) if results[0] else (b, a)
    assert winner.is_leader() and winner.fencing_token() == 1
    assert not loser.is_leader() and loser.fencing_token() is None
    assert await current_holder(databases[0], now=clock.wall()) == winner.holder

    # Renewing keeps the lease and the token; the other keeps losing.
    for _ in range(3):
        clock.advance(RENEW)
        assert await loser.try_acquire() is False
        assert await winner.try_acquire() is True
        assert winner.fencing_token() == 1


async def test_takeover_after_the_holder_stops_renewing_fences_the_old_leader(
    databases: tuple[Database, Database],
) -> None:
    clock = FakeClock()
    a, b = pair(databases, clock)
    assert await a.try_acquire()
    old_token = a.fencing_token()
    assert old_token is not None
    assert not await b.try_acquire()

    # A "pauses" (renews nothing) for longer than the lease; B takes over with a higher token.
    clock.advance(LEASE + 0.001)
    assert await b.try_acquire()
    new_token = b.fencing_token()
    assert new_token is not None and new_token > old_token

    # A resumes holding the token it had: its work is refused inside the transaction.
    async with databases[0].write() as conn:
        with pytest.raises(NotLeader, match="is stale"):
            await run_as_leader(conn, old_token)
    async with databases[1].write() as conn:
        await run_as_leader(conn, new_token)

    # A's renewal fails too, and it no longer claims to lead.
    assert await a.try_acquire() is False
    assert not a.is_leader() and a.fencing_token() is None
    with pytest.raises(NotLeader):
        async with a.fenced():
            pass

    # Taking the lease back later is another change of holder: the token grows again.
    clock.advance(LEASE + 0.001)
    assert await a.try_acquire()
    assert a.fencing_token() == new_token + 1


async def test_is_leader_lapses_locally_when_renewal_stops(
    databases: tuple[Database, Database],
) -> None:
    clock = FakeClock()
    a, _ = pair(databases, clock)
    assert await a.try_acquire()
    clock.advance(LEASE - 0.5)
    assert a.is_leader()
    clock.advance(1.0)
    assert not a.is_leader() and a.fencing_token() is None


async def test_renewal_extends_the_lease(databases: tuple[Database, Database]) -> None:
    clock = FakeClock()
    a, b = pair(databases, clock)
    assert await a.try_acquire()
    clock.advance(LEASE * 0.6)
    assert await a.try_acquire()
    clock.advance(LEASE * 0.6)  # past the first expiry, within the renewed one
    assert not await b.try_acquire()
    assert a.is_leader() and a.fencing_token() == 1


async def test_release_hands_the_lease_over_at_once(databases: tuple[Database, Database]) -> None:
    clock = FakeClock()
    a, b = pair(databases, clock)
    assert await a.try_acquire()
    await a.release()
    assert not a.is_leader()
    assert await current_holder(databases[0], now=clock.wall()) is None
    assert await b.try_acquire()
    assert b.fencing_token() == 2


async def test_the_renewal_loop_runs_duties_with_the_token(
    databases: tuple[Database, Database],
) -> None:
    seen: list[tuple[str, int]] = []
    changes: list[tuple[str, bool, int | None]] = []

    def leader(db: Database, name: str) -> Leader:
        async def duty(token: int) -> None:
            seen.append((name, token))

        async def changed(leading: bool, token: int | None) -> None:
            changes.append((name, leading, token))

        return Leader(
            db, name, duties=[duty], listeners=[changed], lease_seconds=1.0, renew_seconds=0.05
        )

    a = leader(databases[0], "node-a")
    b = leader(databases[1], "node-b")
    await a.start()
    await b.start()
    try:
        await wait_until_async(lambda: len(seen) >= 3, 5, "three rounds of leader duties")
        assert {name for name, _ in seen} == {"node-a"}
        assert {token for _, token in seen} == {1}
        assert changes == [("node-a", True, 1)]
        assert not b.is_leader()

        # A clean stop releases the lease: B takes over on its next round, with token 2.
        await a.stop()
        await wait_until_async(b.is_leader, 5, "node-b to take over")
        assert b.fencing_token() == 2
        await wait_until_async(lambda: ("node-b", 2) in seen, 5, "node-b's duty")
        assert changes[-1] == ("node-b", True, 2)
    finally:
        await a.stop()
        await b.stop()


# A real pause: a leader in another process, stopped with SIGSTOP.

_PAUSABLE_LEADER = """
import asyncio, json, sys
from hubbub.cluster.leader import Leader, NotLeader, run_as_leader
from hubbub.config import load_config
from hubbub.store.db import Database

async def main():
    db = Database(load_config(None).settings.SqlSettings)
    leader = Leader(db, "paused-node", lease_seconds=1.0, renew_seconds=0.2)
    await leader.start()
    while not leader.is_leader():
        await asyncio.sleep(0.01)
    token = leader.fencing_token()
    print(json.dumps({"leader": token}), flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        # Work as leader, carrying the token this process got when it became leader.
        try:
            async with db.write() as conn:
                await run_as_leader(conn, token)
            print(json.dumps({"work": "done"}), flush=True)
        except NotLeader as exc:
            print(json.dumps({"work": "fenced", "error": str(exc)}), flush=True)
    await db.close()

asyncio.run(main())
"""


class LeaderProcess:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PAUSABLE_LEADER],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._buf = b""

    def read(self, timeout: float = 15) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the leader process: {self._buf!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the leader process exited: {self._buf!r}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return dict(json.loads(line))
        except ValueError:
            raise AssertionError(f"unexpected output from the leader process: {line!r}") from None

    def work(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"work\n")
        self.proc.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def leader_process(
    node_env: dict[str, str], node_config: LoadedConfig, tmp_path: Path
) -> Iterator[LeaderProcess]:
    async def prepare() -> None:
        db = Database(node_config.settings.SqlSettings)
        try:
            await migrate(db)
        finally:
            await db.close()

    asyncio.run(prepare())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MM_")}
    process = LeaderProcess({**clean, **node_env}, tmp_path)
    try:
        yield process
    finally:
        process.stop()


async def test_a_paused_leader_process_is_fenced_after_the_takeover(
    leader_process: LeaderProcess, node_config: LoadedConfig
) -> None:
    first = leader_process.read()
    old_token = int(first["leader"])
    assert leader_process.work() == {"work": "done"}

    db = Database(node_config.settings.SqlSettings)
    other = Leader(db, "other-node", lease_seconds=1.0, renew_seconds=0.1)
    await other.start()
    try:
        assert not other.is_leader()
        leader_process.proc.send_signal(signal.SIGSTOP)
        await wait_until_async(other.is_leader, 15, "the other node to take over the paused lease")
        new_token = other.fencing_token()
        assert new_token is not None and new_token > old_token

        leader_process.proc.send_signal(signal.SIGCONT)
        answer = leader_process.work()
        assert answer["work"] == "fenced", answer
        assert f"fencing token {old_token}" in answer["error"]
        assert other.is_leader() and other.fencing_token() == new_token
    finally:
        await other.stop()
        await db.close()


# PostgreSQL: a takeover waits for work the old leader already checked its token for.


async def test_takeover_waits_for_fenced_work_to_commit(postgres: PostgresInstance) -> None:
    from hubbub.config import load_config

    url = fresh_postgres_database(postgres)
    config = load_config(
        None, environ={"MM_SQLSETTINGS_DRIVERNAME": "postgres", "MM_SQLSETTINGS_DATASOURCE": url}
    )
    dbs = (Database(config.settings.SqlSettings), Database(config.settings.SqlSettings))
    clock = FakeClock()
    a, b = pair(dbs, clock)
    try:
        assert await a.try_acquire()
        token = a.fencing_token()
        assert token is not None
        async with dbs[0].write() as conn:
            await run_as_leader(conn, token)
            clock.advance(LEASE + 1)  # the lease runs out while A's fenced work is in flight
            takeover = asyncio.create_task(b.try_acquire())

            async def waiting_on_lock() -> bool:
                async with dbs[0].read() as probe:
                    count = await probe.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE leases%'"
                        )
                    )
                return bool(count)

            async def takeover_blocked() -> bool:
                if takeover.done():
                    raise GiveUp("the takeover did not wait for the fenced work")
                return await waiting_on_lock()

            await wait_until_async(takeover_blocked, 10, "the takeover to block on the lease row")
            await conn.execute(systems.insert().values(name="fenced-work", value=str(token)))
        assert await asyncio.wait_for(takeover, 10) is True
        assert b.fencing_token() == token + 1
        async with dbs[1].read() as conn:
            work = await conn.scalar(
                sql_select(systems.c.value).where(systems.c.name == "fenced-work")
            )
            assert work == str(token)
            assert await conn.scalar(sql_select(func.max(leases.c.token))) == token + 1
    finally:
        for db in dbs:
            await db.close()


def test_the_lease_must_outlast_the_renewal_interval(tmp_path: Path) -> None:
    from hubbub.config import load_config

    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "x.db")})
    db = Database(config.settings.SqlSettings)
    with pytest.raises(ValueError, match="longer than the renewal"):
        Leader(db, "n", lease_seconds=5, renew_seconds=5)
    asyncio.run(db.close())
