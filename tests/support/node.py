"""A `hubbub serve` process on SQLite with its metrics endpoint and its close log (`Node`)."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port, start_on_free_ports
from tests.support.rest import Account
from tests.support.server import ServerProcess, launch_server
from tests.support.wait import wait_until
from tests.support.ws import RawWS


@dataclass
class Node:
    server: ServerProcess
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, /, **labels: str) -> float:
        """The value of one sample (0 when the series does not exist yet)."""
        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def disconnects(self, reason: str) -> float:
        return self.metric("hubbub_websocket_disconnects_total", reason=reason)

    def close_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.server.log().splitlines():
            if '"websocket closed"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("msg") == "websocket closed":
                    lines.append(entry)
        return lines

    def close_line(self, connection_id: str) -> dict[str, Any] | None:
        for entry in self.close_lines():
            if entry.get("connection_id") == connection_id:
                return entry
        return None

    def wait_close_line(self, connection_id: str, timeout: float = 5.0) -> dict[str, Any]:
        try:
            return wait_until(
                lambda: self.close_line(connection_id),
                timeout,
                f"the 'websocket closed' log line of connection {connection_id!r}",
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; close lines: {self.close_lines()}") from None

    def wait_close_reason(
        self, reason: str, before: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Waits for more than `before` close lines with `reason`; returns them all."""

        def found() -> list[dict[str, Any]] | None:
            lines = [e for e in self.close_lines() if e.get("reason") == reason]
            return lines if len(lines) > before else None

        try:
            return wait_until(found, timeout, f"a new close line with reason {reason!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; close lines: {self.close_lines()}") from None

    def connect(self, account: Account | None = None, **kw: Any) -> RawWS:
        return RawWS.connect(self.port, token=account.token if account else None, **kw)


def start_node(workdir: Path, settings: dict[str, str] | None = None) -> Node:
    """A `hubbub serve` on SQLite in `workdir` with metrics, tokens and bots enabled (on other
    ports if one picked for it was taken before it bound it)."""
    workdir.mkdir(parents=True, exist_ok=True)

    def attempt() -> Node:
        metrics_port = free_port()
        env = {
            "MM_SQLSETTINGS_DATASOURCE": str(workdir / "hubbub.db"),
            "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
            "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
            "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
            "MM_METRICSSETTINGS_ENABLE": "true",
            "MM_METRICSSETTINGS_LISTENADDRESS": f"127.0.0.1:{metrics_port}",
            "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
            "MM_LOGSETTINGS_CONSOLEJSON": "true",
            **(settings or {}),
        }
        server = launch_server(workdir, env, free_port())
        return Node(server=server, metrics_port=metrics_port, env=env)

    return start_on_free_ports(attempt, "hubbub serve with metrics")


def keepalive_settings(ping: int, pong: int) -> dict[str, str]:
    return {
        "MM_SERVICESETTINGS_WEBSOCKETPINGINTERVALSECONDS": str(ping),
        "MM_SERVICESETTINGS_WEBSOCKETPONGTIMEOUTSECONDS": str(pong),
    }
