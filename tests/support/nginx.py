"""A private nginx, from the Debian binary, proxying websockets to one hubbub process.

The config lives in a temporary directory together with the pid file, logs and temp paths.
nginx runs in the foreground (`daemon off`), so the Popen PID is the master; it is stopped with
SIGQUIT (graceful: the workers exit with it) and the directory removed. When its port was taken
before it bound it, it is started again, with a fresh directory and port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import exited, free_port, port_open, start_on_free_ports
from tests.support.wait import wait_until

# The start of every nginx config the tests write: one worker, files under {base}, and the
# `$connection_upgrade` map a websocket location needs ({workers}: worker_connections).
NGINX_PREAMBLE = """\
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log info;
events {{ worker_connections {workers}; }}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
"""

_CONFIG = (
    NGINX_PREAMBLE.replace("{workers}", "256")
    + """\
    server {{
        listen 127.0.0.1:{port};
        location /api/v4/websocket {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout {read_timeout};
            proxy_send_timeout {read_timeout};
        }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
)


def nginx_bin() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else ""
    )
    if not found:
        raise RuntimeError(
            "nginx not found: install the Debian package 'nginx' "
            "(scripts/ensure-system-packages does, and `make test` runs it)"
        )
    return found


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    base: Path

    def error_log(self) -> str:
        path = self.base / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.base, ignore_errors=True)


def launch_nginx(config: Callable[[Path, int], str], prefix: str, what: str) -> Nginx:
    """One attempt: nginx with `config(base, port)` in a fresh directory, listening on a free
    port, or stopped and raised (`PortTaken` when that port was taken)."""
    binary = nginx_bin()
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # the workers run as `nobody` when the tests run as root
    port = free_port()
    conf = base / "nginx.conf"
    conf.write_text(config(base, port))
    args = [binary, "-c", str(conf), "-p", f"{base}/", "-e", str(base / "error.log")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"nginx rejected {what}:\n{check.stderr}")
    with (base / "stderr.log").open("wb") as out:
        proc = subprocess.Popen([*args, "-g", "daemon off;"], stdout=out, stderr=out)
    server = Nginx(proc=proc, port=port, base=base)

    def up() -> bool:
        if proc.poll() is not None:
            stderr = (base / "stderr.log").read_text(errors="replace")
            raise exited("nginx", proc.returncode, stderr + server.error_log())
        return port_open(port)

    try:
        wait_until(up, 15, f"nginx on port {port}")
    except BaseException:
        server.stop()
        raise
    return server


def start_nginx(upstream_port: int, read_timeout: str = "60s") -> Nginx:
    """Starts nginx on a free port in front of `upstream_port` with `proxy_read_timeout`."""

    def config(base: Path, port: int) -> str:
        return _CONFIG.format(
            base=base, port=port, upstream=upstream_port, read_timeout=read_timeout
        )

    return start_on_free_ports(
        lambda: launch_nginx(config, "hubbub-nginx-", "its test config"), "nginx"
    )
