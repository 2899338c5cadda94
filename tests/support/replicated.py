"""A PostgreSQL primary with a streaming replica, for the replica and failover tests.

The primary is `start_postgres()` (already `wal_level=replica`, `hot_standby=on`); the replica is
a `pg_basebackup -R` copy of it on its own free port, streaming from it. Real fault injection:
`pause_replay()` / `resume_replay()` (`pg_wal_replay_pause()`: the replica keeps receiving WAL but
applies none, so it lags), `stop_replica()` / `start_replica()` (`pg_ctl stop -m immediate`, then
start again on the same port), `stop_primary()` and `promote()` (`pg_promote()`). Everything is
stopped by `pg_ctl` on its data directory and the directories are removed by `stop()`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import exited, free_port, start_on_free_ports
from tests.support.postgres import PostgresInstance, _as_postgres, start_postgres
from tests.support.wait import wait_until


@dataclass
class ReplicatedPostgres:
    primary: PostgresInstance
    replica: PostgresInstance

    def url(self, which: PostgresInstance, database: str = "postgres") -> str:
        return which.url_for(database)

    def multi_host_url(self, database: str = "postgres") -> str:
        """Both servers in one libpq-style data source; the one that accepts writes wins."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.replica.port}"
        return (
            f"postgres://postgres@{hosts}/{database}"
            "?sslmode=disable&target_session_attrs=read-write"
        )

    def wait_streaming(self, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.primary.psql("SELECT state FROM pg_stat_replication") == "streaming",
            timeout,
            "the replica to stream from the primary",
        )

    def wait_replayed(self, timeout: float = 15.0) -> None:
        """Waits until the replica has replayed everything the primary has written so far."""
        target = self.primary.psql("SELECT pg_current_wal_insert_lsn()")
        wait_until(
            lambda: (
                self.replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "t"
            ),
            timeout,
            f"the replica to replay up to {target}",
        )

    def pause_replay(self) -> None:
        self.replica.psql("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: self.replica.psql("SELECT pg_get_wal_replay_pause_state()") == "paused",
            10,
            "WAL replay to pause on the replica",
        )

    def resume_replay(self) -> None:
        self.replica.psql("SELECT pg_wal_replay_resume()")

    def stop_replica(self) -> None:
        pg_ctl(self.replica, "stop", "-m", "immediate")

    def start_replica(self) -> None:
        pg_ctl(self.replica, "start", "-w", "-t", "60", "-l", str(self.replica.base / "server.log"))

    def stop_primary(self, mode: str = "immediate") -> None:
        pg_ctl(self.primary, "stop", "-m", mode)

    def start_primary(self) -> None:
        pg_ctl(self.primary, "start", "-w", "-t", "60", "-l", str(self.primary.base / "server.log"))

    def promote(self) -> None:
        """`pg_promote()` on the replica; returns once it accepts writes."""
        assert self.replica.psql("SELECT pg_promote(true, 30)") == "t"
        wait_until(
            lambda: self.replica.psql("SELECT pg_is_in_recovery()") == "f",
            30,
            "the promoted replica to leave recovery",
        )

    def stop(self) -> None:
        for instance in (self.replica, self.primary):
            instance.stop()


def pg_ctl(instance: PostgresInstance, *args: str) -> None:
    subprocess.run(
        _as_postgres([str(instance.bindir / "pg_ctl"), "-D", str(instance.base / "data"), *args]),
        capture_output=True,
        timeout=90,
        check=True,
    )


def start_replicated() -> ReplicatedPostgres:
    """A primary and a streaming replica of it, both ready."""
    primary = start_postgres()
    try:
        replica = start_on_free_ports(lambda: _start_replica(primary), "PostgreSQL replica")
    except BaseException:
        primary.stop()
        raise
    pair = ReplicatedPostgres(primary, replica)
    try:
        pair.wait_streaming()
    except BaseException:
        pair.stop()
        raise
    return pair


def _start_replica(primary: PostgresInstance) -> PostgresInstance:
    base = Path(tempfile.mkdtemp(prefix="hubbub-pg-replica-"))
    try:
        if _root():
            shutil.chown(base, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(primary.bindir / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(primary.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(base / "data"),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = free_port()
        with (base / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport={port}\nunix_socket_directories='{base}'\n"
                "wal_receiver_status_interval=1s\nhot_standby_feedback=on\n"
            )
        log_path = base / "server.log"
        started = subprocess.run(
            _as_postgres(
                [
                    str(primary.bindir / "pg_ctl"),
                    "-D",
                    str(base / "data"),
                    "-l",
                    str(log_path),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if started.returncode != 0:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise exited("PostgreSQL replica", started.returncode, started.stdout + log)
        return PostgresInstance(base=base, port=port, bindir=primary.bindir)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _root() -> bool:
    import os

    return os.geteuid() == 0
