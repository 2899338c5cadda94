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

from tests.support.ports import exited, free_port, start_on_free_ports
from tests.support.wait import wait_until


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    log_offset: int = 0  # where this process's output starts in `log_path`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def own_log(self) -> str:
        """What this process wrote (the log file may hold earlier lives too)."""
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def exited(self, what: str = "hubbub") -> Exception:
        """The error for this process having exited while it was expected to start."""
        return exited(what, self.proc.returncode, self.own_log())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def spawn_server(
    workdir: Path,
    env: Mapping[str, str],
    log_path: Path,
    port: int,
    module: str = "hubbub.cli.main",
    *,
    python: str = sys.executable,
) -> ServerProcess:
    """Starts `python -m module serve` (`hubbub serve`, or `tests.support.faulty_node` for a node
    with a fault built in) in `workdir` with `env` (added to this process's environment),
    appending its output to `log_path`; does not wait for it."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    full_env = {**os.environ, **env}
    if module.startswith("tests."):
        # The node runs in its own directory; the test helpers live beside the tests.
        root = str(Path(__file__).resolve().parents[2])
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, full_env.get("PYTHONPATH", "")) if p
        )
    with log_path.open("ab") as log_file:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [python, "-m", module, "serve"],
            cwd=workdir,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(
        proc=proc, port=port, workdir=workdir, log_path=log_path, log_offset=offset
    )


def _ping(url: str) -> bool:
    with urllib.request.urlopen(url + "/api/v4/system/ping", timeout=1) as resp:
        return bool(resp.status == 200)


def wait_serving(server: ServerProcess, timeout: float = 30) -> None:
    """Waits until `server` answers its ping with 200; raises `PortTaken` or `ProcessExited`
    (killing nothing) when it exits first."""

    def up() -> bool:
        if server.proc.poll() is not None:
            raise server.exited()
        # A process that lost its port exits; one that answered from it is ours if still alive.
        return _ping(server.url) and server.proc.poll() is None

    wait_until(up, timeout, f"hubbub serve on port {server.port}")


def launch_server(workdir: Path, env: Mapping[str, str], port: int) -> ServerProcess:
    """One attempt: `hubbub serve` on `port`, up and answering, or stopped and raised."""
    full_env = {
        "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{port}",
        "MM_LOGSETTINGS_CONSOLELEVEL": "DEBUG",
        **env,
    }
    server = spawn_server(workdir, full_env, workdir / f"hubbub-{port}.log", port)
    try:
        wait_serving(server)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server


def start_server(workdir: Path, env: Mapping[str, str] | None = None) -> ServerProcess:
    """Starts `hubbub serve` in `workdir` (SQLite there unless `env` says otherwise) on a free
    port, again on another one if that was taken meanwhile."""
    workdir.mkdir(parents=True, exist_ok=True)
    return start_on_free_ports(
        lambda: launch_server(workdir, env or {}, free_port()), "hubbub serve"
    )
