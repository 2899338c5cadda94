"""A private S3-compatible server for tests: moto's `moto_server` on a free loopback port (another
one if that was taken before moto bound it).

moto keeps everything in memory, so `restart()` (or `kill()` then `start_again()`) is a new, empty
server on the same port; the buckets this helper created are created again, empty. Stopped by
PID; its scratch directory (the log) is removed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.ports import exited, free_port, start_on_free_ports
from tests.support.wait import wait_until

ACCESS_KEY_ID = "hubbub-test-key"
SECRET_ACCESS_KEY = "hubbub-test-secret"
REGION = "us-east-1"

_bucket_numbers = itertools.count()


def moto_server_binary() -> str:
    """`moto_server` of the interpreter running the tests, else the one on PATH."""
    beside = Path(sys.executable).parent / "moto_server"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError(
            f"moto_server not found (looked in {beside.parent} and on PATH); it comes with the "
            "dev extra's moto[s3,server]: run `make setup` or `pip install -e '.[dev]'`"
        )
    return found


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url + "/", timeout=1) as resp:
        return bool(resp.status == 200)


@dataclass
class MotoServer:
    port: int
    base: Path
    binary: str
    buckets: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _admin: Any = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.base / "moto.log").read_text(errors="replace")

    @property
    def admin(self) -> Any:
        """A boto3 S3 client for looking into the server behind the backend's back."""
        if self._admin is None:
            self._admin = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
            )
        return self._admin

    def create_bucket(self, name: str | None = None) -> str:
        """Creates a bucket (a fresh, unique one unless `name` is given); returns its name."""
        name = name or f"hubbub-test-{os.getpid()}-{next(_bucket_numbers)}"
        self.admin.create_bucket(Bucket=name)
        if name not in self.buckets:
            self.buckets.append(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in `bucket` under `prefix`, sorted."""
        found: list[str] = []
        pages = self.admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def get(self, bucket: str, key: str) -> bytes:
        body = self.admin.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def node_env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """MM_* variables that point a node's file store at `bucket` on this server."""
        return {
            "MM_FILESETTINGS_DRIVERNAME": "amazons3",
            "MM_FILESETTINGS_AMAZONS3ENDPOINT": f"127.0.0.1:{self.port}",
            "MM_FILESETTINGS_AMAZONS3SSL": "false",
            "MM_FILESETTINGS_AMAZONS3BUCKET": bucket,
            "MM_FILESETTINGS_AMAZONS3PATHPREFIX": prefix,
            "MM_FILESETTINGS_AMAZONS3REGION": REGION,
            "MM_FILESETTINGS_AMAZONS3ACCESSKEYID": ACCESS_KEY_ID,
            "MM_FILESETTINGS_AMAZONS3SECRETACCESSKEY": SECRET_ACCESS_KEY,
        }

    def _launch(self) -> None:
        log_path = self.base / "moto.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
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
                raise exited("moto_server", proc.returncode, output)
            return _answers(self.endpoint)

        try:
            wait_until(ready, 20, f"moto_server on port {self.port}")
            for bucket in self.buckets:
                self.admin.create_bucket(Bucket=bucket)
        except BaseException:
            self._terminate()
            raise

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """Stops the server without starting it again: every S3 call then fails."""
        self._terminate()

    def start_again(self) -> None:
        """A new, empty server on the same port, with this helper's buckets created again."""
        self._launch()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        """Starts the server again if a test stopped it (and left it stopped)."""
        if not self.running:
            self._launch()

    def restart(self) -> None:
        self._terminate()
        self._launch()

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            shutil.rmtree(self.base, ignore_errors=True)


def start_moto() -> MotoServer:
    binary = moto_server_binary()

    def attempt() -> MotoServer:
        server = MotoServer(
            port=free_port(), base=Path(tempfile.mkdtemp(prefix="hubbub-moto-")), binary=binary
        )
        try:
            server._launch()
        except BaseException:
            server.stop()
            raise
        return server

    return start_on_free_ports(attempt, "moto_server")
