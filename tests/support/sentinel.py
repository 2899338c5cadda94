"""Redis under Sentinel for tests: one master, one replica and three sentinels, all private
processes on free loopback ports (the Debian `redis-server` and `redis-sentinel` binaries), stopped
by PID.

`kill_master()` SIGKILLs the current master; the sentinels notice within
`DOWN_AFTER_MS` and promote the replica. `wait_for_failover()` waits until they name the new
master. `spec` is what a node puts in `CacheSettings.RedisSentinels`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

from hubbub.cluster.redis_eventlog import parse_sentinels, sentinel_client
from tests.support.ports import exited, free_port, start_on_free_ports
from tests.support.redis import RedisInstance, redis_server_binary
from tests.support.wait import wait_until

MASTER_NAME = "hubbubmaster"
DOWN_AFTER_MS = 1000  # how long the master must be silent before the sentinels act
FAILOVER_TIMEOUT_MS = 5000

MISSING = (
    "redis-sentinel not found (looked on PATH and in /usr/bin); install the Debian package "
    "'redis-sentinel' (make test does this through scripts/ensure-system-packages)"
)


def sentinel_binary() -> str:
    found = shutil.which("redis-sentinel")
    if found is None and os.access("/usr/bin/redis-sentinel", os.X_OK):
        found = "/usr/bin/redis-sentinel"
    if found is None:
        raise RuntimeError(MISSING)
    return found


def _admin(port: int, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def _role(port: int) -> dict[str, Any]:
    with _admin(port) as client:
        return dict(client.info("replication"))


@dataclass
class RedisReplica(RedisInstance):
    """A redis-server replicating `master_port`."""

    master_port: int = 0

    def _extra_args(self) -> list[str]:
        return ["--replicaof", "127.0.0.1", str(self.master_port)]


@dataclass
class SentinelProcess:
    port: int
    base: Path
    binary: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def launch(self, master_port: int, quorum: int) -> None:
        config = self.base / "sentinel.conf"
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.base}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        log_path = self.base / "sentinel.log"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise exited("redis-sentinel", proc.returncode, log_path.read_text())
            try:
                with _admin(self.port, 0.5) as client:
                    return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(ready, 10, f"redis-sentinel on port {self.port}")

    def master_port(self) -> int | None:
        """The port of the master this sentinel names now."""
        with _admin(self.port) as client:
            found = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(found[1]) if found else None

    def knows(self) -> tuple[int, int]:
        """(other sentinels, replicas) this sentinel knows of for the master."""
        with _admin(self.port) as client:
            state = client.sentinel_master(MASTER_NAME)
        return int(state["num-other-sentinels"]), int(state["num-slaves"])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class SentinelSet:
    """One master, one replica, three sentinels (quorum 2)."""

    master: RedisInstance
    replica: RedisInstance
    sentinels: list[SentinelProcess]
    base: Path
    failovers: int = 0

    @property
    def spec(self) -> str:
        """`CacheSettings.RedisSentinels`."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    @property
    def master_name(self) -> str:
        return MASTER_NAME

    def client(self) -> Redis:
        """A client as a node builds one from `CacheSettings.RedisSentinels`."""
        return sentinel_client(parse_sentinels(self.spec), MASTER_NAME)

    def master_port(self) -> int | None:
        """The master as the first sentinel that answers names it."""
        for sentinel in self.sentinels:
            try:
                return sentinel.master_port()
            except redis.RedisError:
                continue
        return None

    def current_master(self) -> RedisInstance:
        port = self.master_port()
        return self.replica if port == self.replica.port else self.master

    def wait_replicated(self, timeout: float = 20) -> None:
        """The replica has finished its initial sync (it serves the master's data)."""

        def synced() -> bool:
            return _role(self.replica.port).get("master_link_status") == "up"

        wait_until(synced, timeout, "the replica's sync with the master")

    def wait_sentinels_agree(self, port: int, timeout: float = 20) -> None:
        def agree() -> bool:
            try:
                return all(s.master_port() == port for s in self.sentinels)
            except redis.RedisError:
                return False

        wait_until(agree, timeout, f"every sentinel naming the master on port {port}")

    def wait_acquainted(self, timeout: float = 30) -> None:
        """Every sentinel knows the two others and the replica: a failover can be agreed."""

        def acquainted() -> bool:
            try:
                return all(s.knows() == (2, 1) for s in self.sentinels)
            except redis.RedisError:
                return False

        wait_until(acquainted, timeout, "the sentinels discovering each other and the replica")

    def kill_master(self) -> RedisInstance:
        """SIGKILLs the current master; returns the instance that should take over."""
        master = self.current_master()
        survivor = self.replica if master is self.master else self.master
        proc = master.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        master.proc = None
        return survivor

    def wait_for_failover(self, survivor: RedisInstance, timeout: float = 30) -> None:
        self.wait_sentinels_agree(survivor.port, timeout)

        def promoted() -> bool:
            return _role(survivor.port).get("role") == "master"

        wait_until(promoted, timeout, "the replica's promotion")
        self.failovers += 1

    def stop(self) -> None:
        errors: list[BaseException] = []
        for sentinel in self.sentinels:
            try:
                sentinel.stop()
            except BaseException as exc:
                errors.append(exc)
        for instance in (self.replica, self.master):
            try:
                instance.stop()
            except BaseException as exc:
                errors.append(exc)
        shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]


def start_sentinel_set() -> SentinelSet:
    from tests.support.redis import start_redis

    binary = sentinel_binary()
    base = Path(tempfile.mkdtemp(prefix="hubbub-sentinel-"))
    master = start_redis()
    replica: RedisInstance | None = None
    sentinels: list[SentinelProcess] = []
    try:

        def attempt_replica() -> RedisInstance:
            instance = RedisReplica(
                port=free_port(),
                base=Path(tempfile.mkdtemp(prefix="hubbub-redis-replica-")),
                binary=redis_server_binary(),
                master_port=master.port,
            )
            try:
                instance._launch()
            except BaseException:
                shutil.rmtree(instance.base, ignore_errors=True)
                raise
            return instance

        replica = start_on_free_ports(attempt_replica, "redis-server (replica)")
        for i in range(3):
            directory = base / f"sentinel{i}"
            directory.mkdir()

            def attempt_sentinel(directory: Path = directory) -> SentinelProcess:
                sentinel = SentinelProcess(port=free_port(), base=directory, binary=binary)
                try:
                    sentinel.launch(master.port, quorum=2)
                except BaseException:
                    sentinel.stop()
                    raise
                return sentinel

            sentinels.append(start_on_free_ports(attempt_sentinel, "redis-sentinel"))
        found = SentinelSet(master, replica, sentinels, base)
        found.wait_replicated()
        found.wait_sentinels_agree(master.port)
        found.wait_acquainted()
        return found
    except BaseException:
        for sentinel in sentinels:
            sentinel.stop()
        if replica is not None:
            replica.stop()
        master.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
