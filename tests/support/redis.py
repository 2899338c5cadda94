"""A private Redis for tests, from the Debian `redis-server` binary, on a free loopback port
(another one if that was taken before Redis bound it).

No persistence (`--save '' --appendonly no`), so `restart()` is a Redis that lost its data.
Stopped by PID; its scratch directory is removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from hubbub.cluster.redis_eventlog import redis_client
from tests.support.ports import exited, free_port, start_on_free_ports
from tests.support.wait import wait_until

MISSING = (
    "redis-server not found (looked on PATH and in /usr/bin); install the Debian package "
    "'redis-server' (make test does this through scripts/ensure-system-packages)"
)


def redis_server_binary(path: str | None = None) -> str:
    found = shutil.which("redis-server", path=path)
    if found is None and path is None and os.access("/usr/bin/redis-server", os.X_OK):
        found = "/usr/bin/redis-server"
    if found is None:
        raise RuntimeError(MISSING)
    return found


def _answers_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


@dataclass
class RedisInstance:
    port: int
    base: Path
    binary: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        """A client as the backends expect one (bytes replies, a pool that waits)."""
        return redis_client(self.url)

    def _extra_args(self) -> list[str]:
        return []

    def _launch(self) -> None:
        log_path = self.base / "redis.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.base),
                    *self._extra_args(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                output = log_path.read_bytes()[offset:].decode(errors="replace")
                raise exited("redis-server", proc.returncode, output)
            return _answers_ping(self.port)

        try:
            wait_until(ready, 10, f"redis-server on port {self.port}")
        except BaseException:
            self._terminate()
            raise

    def _terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, hard: bool = False) -> None:
        """Stops Redis (SIGKILL when `hard`) and starts a new one on the same port: everything
        it held is lost."""
        self._terminate(signal.SIGKILL if hard else signal.SIGTERM)
        self._launch()

    def kill(self) -> None:
        """Stops Redis without starting it again (the bus and every command then fail)."""
        self._terminate()

    def start_again(self) -> None:
        self._launch()

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def start_redis() -> RedisInstance:
    binary = redis_server_binary()

    def attempt() -> RedisInstance:
        instance = RedisInstance(
            port=free_port(), base=Path(tempfile.mkdtemp(prefix="hubbub-redis-")), binary=binary
        )
        try:
            instance._launch()
        except BaseException:
            shutil.rmtree(instance.base, ignore_errors=True)
            raise
        return instance

    return start_on_free_ports(attempt, "redis-server")
