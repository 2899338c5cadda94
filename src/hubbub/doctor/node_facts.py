"""What a node says about itself to `hubbub doctor` (`GET /api/v4/hubbub/doctor`, system admins).

The facts only the node's own process can see: how the request reached it (peer, the client
address it resolved, scheme, HTTP version, forwarded headers), its clock against the database's,
its open-file limit and descriptors in use, the host's kernel settings that matter for many
connections, and the settings the doctor compares the proxy with. No judgement here: the
doctor's checks (`hubbub.doctor.checks`) decide what is wrong.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hubbub.api.forwarded import ProxyTrust
from hubbub.config import LoadedConfig
from hubbub.store.db import Database

# The kernel settings Mattermost's high-availability guide tunes (docs/operations.md).
SYSCTLS = (
    "net.core.somaxconn",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_max_syn_backlog",
    "fs.file-max",
)


def read_sysctls(root: Path = Path("/proc/sys")) -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        path = root / name.replace(".", "/")
        try:
            out[name] = " ".join(path.read_text().split())
        except OSError:
            continue
    return out


def open_descriptors() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class NodeFacts:
    def __init__(
        self,
        config: Callable[[], LoadedConfig],
        db: Database,
        trust: ProxyTrust,
        *,
        node_name: str,
        version: str,
        websockets: Callable[[], int],
        problems: Callable[[], list[str]],
    ) -> None:
        self.config = config
        self.db = db
        self.trust = trust
        self.node_name = node_name
        self.version = version
        self.websockets = websockets
        self.problems = problems

    async def clock(self) -> dict[str, Any]:
        """This node's clock against the database server's, with the query's round trip."""
        if self.db.is_sqlite:
            return {"database_ms": None, "note": "SQLite: the database has no clock of its own"}
        sent = time.time()
        async with self.db.read() as conn:
            db_ms = (
                await conn.execute(
                    text("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint")
                )
            ).scalar_one()
        answered = time.time()
        middle_ms = (sent + answered) / 2 * 1000
        return {
            "database_ms": int(db_ms),
            "node_ms": round(middle_ms),
            "skew_ms": round(middle_ms - int(db_ms), 1),
            "round_trip_ms": round((answered - sent) * 1000, 1),
        }

    def request(self, scope: dict[str, Any]) -> dict[str, Any]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        peer = scope.get("hubbub.peer", "")
        client = scope.get("client")
        return {
            "peer": peer,
            "peer_trusted": self.trust.trusts(peer) if peer else False,
            "client": client[0] if client else "",
            "scheme": scope.get("scheme", ""),
            "http_version": scope.get("http_version", ""),
            "host": headers.get("host", ""),
            "x_forwarded_for": headers.get("x-forwarded-for", ""),
            "x_forwarded_proto": headers.get("x-forwarded-proto", ""),
            "x_real_ip": headers.get("x-real-ip", ""),
        }

    async def collect(self, scope: dict[str, Any]) -> dict[str, Any]:
        s = self.config().settings
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return {
            "node_name": self.node_name,
            "version": self.version,
            "config_hash": self.config().hash,
            "problems": self.problems(),
            "request": self.request(scope),
            "clock": await self.clock(),
            "limits": {
                "nofile_soft": soft,
                "nofile_hard": hard,
                "open_descriptors": open_descriptors(),
                "websocket_connections": self.websockets(),
            },
            "sysctl": read_sysctls(),
            "settings": {
                "SiteURL": s.ServiceSettings.SiteURL,
                "WebsocketPingIntervalSeconds": s.ServiceSettings.WebsocketPingIntervalSeconds,
                "WebsocketPongTimeoutSeconds": s.ServiceSettings.WebsocketPongTimeoutSeconds,
                "TrustedProxies": list(s.ServiceSettings.TrustedProxies),
                "TrustedProxyIPHeader": list(s.ServiceSettings.TrustedProxyIPHeader),
                "RateLimitEnable": s.RateLimitSettings.Enable,
                "ClusterEnable": s.ClusterSettings.Enable,
            },
        }
