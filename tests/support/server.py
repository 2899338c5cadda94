"""A real `hubbub serve` process on a free port, configured through MM_* variables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_for


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _ping(url: str) -> bool:
    with urllib.request.urlopen(url + "/api/v4/system/ping", timeout=1) as resp:
        return bool(resp.status == 200)


def start_server(workdir: Path, env: Mapping[str, str] | None = None) -> ServerProcess:
    """Starts `hubbub serve` in `workdir` (SQLite there unless `env` says otherwise)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {
        **os.environ,
        "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{port}",
        "MM_LOGSETTINGS_CONSOLELEVEL": "DEBUG",
        **(env or {}),
    }
    log_path = workdir / f"hubbub-{port}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub.cli.main", "serve"],
        cwd=workdir,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(proc=proc, port=port, workdir=workdir, log_path=log_path)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"hubbub exited with {proc.returncode}:\n{server.log()}")
        return _ping(server.url)

    try:
        wait_for(up, 30, f"hubbub serve on port {port}")
    except Exception:
        server.stop(signal.SIGKILL)
        raise
    return server
