"""A private PostgreSQL instance for tests, from the Debian binaries, on a free port.

It runs as the `postgres` user when the tests run as root (initdb refuses root). When its port
was taken before the server bound it, it is started again on another one. Stopped by
`pg_ctl -m immediate stop` and its directory removed. `fresh_postgres_database` copies the
migrated template database (made by the `postgres` fixture in tests/conftest.py) for one test.
`frozen(instance)` stops every process of an instance with SIGSTOP for a block: a database that
hangs.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import exited, free_port, start_on_free_ports

_db_counter = itertools.count()


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
            "install the Debian package 'postgresql' (make test does this)"
        )
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresInstance:
    base: Path
    port: int
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def url_for(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-Atc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.base / "data"),
                    "-m",
                    "immediate",
                    "stop",
                ]
            ),
            capture_output=True,
            timeout=30,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def fresh_postgres_database(instance: PostgresInstance) -> str:
    """A new database copied from `hubbub_template`; returns its URL."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    instance.psql(f"CREATE DATABASE {name} TEMPLATE hubbub_template")
    return instance.url_for(name)


def empty_postgres_database(instance: PostgresInstance) -> str:
    """A new database without hubbub's schema (the upgrade test lets an older release create
    its own); returns its URL."""
    name = f"e{os.getpid()}_{next(_db_counter)}"
    instance.psql(f"CREATE DATABASE {name}")
    return instance.url_for(name)


def start_postgres() -> PostgresInstance:
    bindir = pg_bin()
    base = Path(tempfile.mkdtemp(prefix="hubbub-pg-"))
    try:
        _initdb(bindir, base)
        return start_on_free_ports(lambda: _start_on_a_free_port(bindir, base), "PostgreSQL")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _initdb(bindir: Path, base: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(base / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (base / "data" / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nlisten_addresses='127.0.0.1'\nunix_socket_directories='{base}'\n"
            "fsync=off\nfull_page_writes=off\nsynchronous_commit=off\nmax_connections=200\n"
            "wal_level=replica\nmax_wal_senders=4\nhot_standby=on\n"
            # Diagnostics in server.log: lock waits past deadlock_timeout, statements over 1 s.
            "log_lock_waits=on\ndeadlock_timeout=300ms\nlog_min_duration_statement=1000\n"
        )


def _start_on_a_free_port(bindir: Path, base: Path) -> PostgresInstance:
    port = free_port()
    with (base / "data" / "postgresql.conf").open("a") as conf:
        conf.write(f"port={port}\n")  # the last setting of a name wins
    log_path = base / "server.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    started = subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
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
        log = log_path.read_bytes()[offset:].decode(errors="replace") if log_path.exists() else ""
        raise exited("PostgreSQL", started.returncode, started.stdout + started.stderr + log)
    return PostgresInstance(base=base, port=port, bindir=bindir)


def postgres_pids(instance: PostgresInstance) -> list[int]:
    """The postmaster and every process it forked (backends, walwriter, ...), from /proc."""
    postmaster = int((instance.base / "data" / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            # The command may contain spaces: the parent pid is the 2nd field after ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry.name))
    return pids


def signal_postgres(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@contextlib.contextmanager
def frozen(instance: PostgresInstance) -> Iterator[None]:
    """Every process of `instance` stopped with SIGSTOP (a database that hangs: connections
    open, nothing answered) until the block ends, then SIGCONT, whatever happened. Only on a
    test's own instance, never the session's shared one."""
    pids = postgres_pids(instance)
    signal_postgres(pids, signal.SIGSTOP)
    try:
        yield
    finally:
        signal_postgres(pids, signal.SIGCONT)
