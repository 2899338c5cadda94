"""`hubbub doctor [--url URL] [--token T] [--json] [--idle-max S] [--node URL ...]`.

Runs the probes (`hubbub.doctor.probes`) through the proxy at `--url` and against each node
directly, judges them (`hubbub.doctor.checks`) and prints the findings, each with its
explanation and fix; `--json` prints them as JSON. Exit status: 0 when nothing failed, 1 when
something did (warnings alone leave it 0 unless `--strict`), 2 when doctor could not run.

Most checks need a system admin's token (`--token`, or `HUBBUB_TOKEN`): the node facts, the
cluster view, and the websocket without pings on which the proxy's idle timeout is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from hubbub.config import LoadedConfig, split_address
from hubbub.doctor import checks
from hubbub.doctor.checks import Finding
from hubbub.doctor.probes import (
    Target,
    get_json,
    hold_idle,
    put_json,
    wait_text,
    websocket_handshake,
)

DEFAULT_IDLE_MAX = 300.0


def add_parser(sub: Any, load: Callable[[argparse.Namespace], LoadedConfig]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check a running deployment (proxy, idle timeout, nodes, host) and explain",
    )
    parser.add_argument("--url", help="the public site URL (default: SiteURL, else this node)")
    parser.add_argument("--token", help="a system admin's token (default: $HUBBUB_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--idle-max",
        type=float,
        default=DEFAULT_IDLE_MAX,
        help="longest idle time to measure the proxy's websocket timeout, seconds (300)",
    )
    parser.add_argument(
        "--skip-idle", action="store_true", help="do not measure the proxy's idle timeout"
    )
    parser.add_argument(
        "--node",
        action="append",
        default=[],
        help="a node's own URL (repeat; default: the nodes the cluster view lists)",
    )
    parser.add_argument(
        "--expected-connections",
        type=int,
        default=0,
        help="websockets one node should hold (checked against its open-file limit)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")

    def run(args: argparse.Namespace) -> int:
        return cmd_doctor(args, load)

    parser.set_defaults(func=run)


def _default_url(args: argparse.Namespace, load: Callable[[argparse.Namespace], Any]) -> str:
    if args.url:
        return str(args.url)
    settings = load(args).settings
    if settings.ServiceSettings.SiteURL:
        return str(settings.ServiceSettings.SiteURL)
    host, port = split_address(settings.ServiceSettings.ListenAddress)
    return f"http://{host}:{port}"


def cmd_doctor(args: argparse.Namespace, load: Callable[[argparse.Namespace], Any]) -> int:
    try:
        target = Target.parse(_default_url(args, load))
    except ValueError as exc:
        print(f"hubbub doctor: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("HUBBUB_TOKEN") or None
    progress = None if args.json else _progress
    doctor = Doctor(
        target,
        token,
        idle_max=0 if args.skip_idle else args.idle_max,
        nodes=list(args.node),
        expected_connections=args.expected_connections,
        progress=progress,
    )
    findings = doctor.run()
    failed = any(f.status == "fail" for f in findings)
    warned = any(f.status == "warn" for f in findings)
    status = 1 if failed or (args.strict and warned) else 0
    if args.json:
        print(
            json.dumps(
                {
                    "url": target.base,
                    "exit_status": status,
                    "findings": [f.as_dict() for f in findings],
                },
                indent=2,
            )
        )
    else:
        print(render(target.base, findings, status))
    return status


def _progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


LABELS = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def render(url: str, findings: list[Finding], status: int) -> str:
    lines = [f"hubbub doctor: {url}", ""]
    for f in findings:
        lines.append(f"  {LABELS[f.status]:<5} {f.check}: {f.summary}")
        if f.status in {"warn", "fail", "skip"}:
            if f.explanation:
                lines.append(f"        why: {f.explanation}")
            if f.fix:
                lines.append(f"        fix: {f.fix}")
    fails = sum(f.status == "fail" for f in findings)
    warns = sum(f.status == "warn" for f in findings)
    lines += ["", f"{fails} failed, {warns} warnings: exit status {status}"]
    return "\n".join(lines)


class Doctor:
    def __init__(
        self,
        target: Target,
        token: str | None,
        *,
        idle_max: float,
        nodes: list[str],
        expected_connections: int,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.target = target
        self.token = token
        self.idle_max = idle_max
        self.nodes = nodes
        self.expected = expected_connections
        self.progress = progress or (lambda _: None)
        self.findings: list[Finding] = []

    def add(self, *found: Finding) -> None:
        self.findings.extend(found)

    def run(self) -> list[Finding]:
        base = self.target.base
        ping = get_json(base, "/api/v4/system/ping")
        if ping.status != 200:
            self.add(
                Finding(
                    "proxy: health check",
                    "fail",
                    f"GET /api/v4/system/ping through {base} answered {ping.status or ping.error}",
                    "Nothing healthy answers at this address: the proxy is down, points at "
                    "the wrong place, or every node is unhealthy.",
                    "Check the proxy and run doctor against a node directly (--url).",
                )
            )
            if ping.status == 0:
                return self.findings
        else:
            self.add(
                Finding(
                    "proxy: health check",
                    "ok",
                    f"/api/v4/system/ping answers 200 in {ping.elapsed_ms:.0f} ms",
                )
            )
        upgraded = self.check_upgrade()
        facts = self.node_facts(base)
        ping_interval = 25.0
        if facts is not None:
            settings = facts.get("settings", {})
            ping_interval = float(settings.get("WebsocketPingIntervalSeconds", 25))
            self.add(checks.forwarded(facts["request"], settings.get("TrustedProxies", [])))
            self.add(checks.site_url(base, settings.get("SiteURL", "")))
        # The idle measurement is the slowest part: it runs last, but is reported with the
        # other proxy findings.
        proxy_findings = len(self.findings)
        self.check_nodes()
        if upgraded:
            nodes = self.findings[proxy_findings:]
            del self.findings[proxy_findings:]
            self.check_idle(ping_interval)
            self.add(*nodes)
        return self.findings

    def check_upgrade(self) -> bool:
        hs = websocket_handshake(self.target, None)
        if hs.sock is not None:
            hs.sock.close()
        seen = hs.headers.get("x-hubbub-upgrade-seen", "")
        self.add(checks.upgrade(hs.status, hs.reason, seen, hs.error))
        # A plain GET on the websocket path: the node says which HTTP version reached it.
        plain = get_json(self.target.base, "/api/v4/websocket")
        self.add(checks.upstream_http_version(plain.headers.get("x-hubbub-upgrade-seen", "")))
        return hs.status == 101

    def node_facts(self, base: str) -> dict[str, Any] | None:
        if not self.token:
            self.add(
                Finding(
                    "node facts",
                    "skip",
                    "no token: forwarded headers, site URL, clocks and host limits not checked",
                    fix="Pass a system admin's token with --token or HUBBUB_TOKEN.",
                )
            )
            return None
        answer = get_json(base, "/api/v4/hubbub/doctor", self.token)
        if answer.status != 200 or not isinstance(answer.body, dict):
            self.add(
                Finding(
                    "node facts",
                    "fail",
                    f"GET /api/v4/hubbub/doctor answered {answer.status or answer.error}",
                    "The token must belong to a system admin, and the node must run a hubbub "
                    "release with doctor support.",
                )
            )
            return None
        return answer.body

    def check_nodes(self) -> None:
        if not self.token:
            return
        view = get_json(self.target.base, "/api/v4/hubbub/console", self.token)
        entries: list[dict[str, Any]] = []
        if view.status == 200 and isinstance(view.body, dict):
            entries = list(view.body.get("nodes", []))
            self.add(*_data_tier(view.body.get("data", {})))
        urls = list(self.nodes)
        names: dict[str, str] = {}
        if not urls:
            for entry in entries:
                host, _, port = str(entry.get("address", "")).rpartition(":")
                if host and port and "down" not in " ".join(entry.get("reasons", [])):
                    url = f"http://{host}:{port}"
                    urls.append(url)
                    names[url] = entry.get("node_name", url)
        by_name = {e.get("node_name"): e for e in entries}
        for url in urls:
            started = time.monotonic()
            ping = get_json(url, "/api/v4/system/ping?get_server_status=true")
            facts_answer = get_json(url, "/api/v4/hubbub/doctor", self.token)
            facts = facts_answer.body if facts_answer.status == 200 else None
            name = facts.get("node_name") if isinstance(facts, dict) else names.get(url, url)
            label = f"node {name} ({url})"
            if ping.status != 200:
                self.add(
                    Finding(
                        f"{label}: ping",
                        "fail",
                        f"answered {ping.status or ping.error}: {ping.body}",
                        "The node is down, draining, or one of its dependencies fails.",
                        "Read the node's log; /api/v4/system/ping?get_server_status=true says "
                        "which check fails.",
                    )
                )
            else:
                elapsed = (time.monotonic() - started) * 1000
                self.add(Finding(f"{label}: ping", "ok", f"200 in {elapsed:.0f} ms"))
            if not isinstance(facts, dict):
                continue
            node_entry = by_name.get(facts.get("node_name"))
            if node_entry is not None:
                self.add(checks.node_state(label, node_entry))
            self.add(checks.clock(label, facts.get("clock", {})))
            self.add(checks.host_limits(label, facts.get("limits", {}), self.expected))
            self.add(*checks.kernel(label, facts.get("sysctl", {})))
        self.check_echo(urls)

    def check_echo(self, urls: list[str], rounds: int = 3) -> None:
        """An event published on the first node reaches this user's websocket on every node:
        the event bus between the nodes works, and how fast (the median of `rounds`). The event
        is a preference of the doctor's own user (`preferences_changed` goes to all of a user's
        connections)."""
        if not urls or not self.token:
            return
        me = get_json(urls[0], "/api/v4/users/me", self.token)
        if me.status != 200 or not isinstance(me.body, dict):
            return
        sockets = {}
        for url in urls:
            hs = websocket_handshake(Target.parse(url), self.token)
            if hs.sock is not None:
                sockets[url] = hs
        try:
            # The hello first: the socket is attached before the event is published.
            readers = {url: wait_text(hs, '"hello"', 5.0)[1] for url, hs in sockets.items()}
            latencies: dict[str, list[float | None]] = {url: [] for url in sockets}
            for n in range(rounds):
                if not self._echo_round(urls[0], me.body["id"], n, sockets, readers, latencies):
                    return
        finally:
            for hs in sockets.values():
                if hs.sock is not None:
                    hs.sock.close()
        origin = urls[0]
        for url, times in latencies.items():
            where = "the same node" if url == origin else url
            seen = sorted(t for t in times if t is not None)
            if len(seen) < len(times):
                self.add(
                    Finding(
                        f"event bus: {origin} -> {url}",
                        "fail",
                        f"{len(times) - len(seen)} of {len(times)} events published on {origin} "
                        f"did not reach a websocket on {where} within 5 s",
                        "Users connected to that node miss new posts and updates until they "
                        "reload.",
                        "Check CacheSettings (every node on the same Redis) and the node's log "
                        "for event bus errors.",
                        {"latencies_ms": times},
                    )
                )
                continue
            median = seen[len(seen) // 2]
            self.add(
                Finding(
                    f"event bus: {origin} -> {url}",
                    "ok" if median < 1000 else "warn",
                    f"events published on {origin} reached {where} {median:.0f} ms after the "
                    f"request that made them (median of {len(seen)}, max {seen[-1]:.0f} ms)",
                    "" if median < 1000 else "Events take long to cross between nodes.",
                    data={"median_ms": median, "latencies_ms": times},
                )
            )

    def _echo_round(
        self,
        origin: str,
        user_id: str,
        n: int,
        sockets: dict[str, Any],
        readers: dict[str, Any],
        latencies: dict[str, list[float | None]],
    ) -> bool:
        marker = f"echo-{time.time_ns()}-{n}"
        # Every socket is read in its own thread while the request is in flight, so each
        # arrival is timed when it happens, not when this thread gets round to it.
        arrivals: dict[str, float | None] = {}
        listeners = [
            threading.Thread(
                target=lambda u=url, h=hs: arrivals.__setitem__(
                    u, wait_text(h, marker, 5.0, readers[u])[0]
                ),
                daemon=True,
            )
            for url, hs in sockets.items()
        ]
        sent = time.monotonic()
        for listener in listeners:
            listener.start()
        preference = {"user_id": user_id, "category": "hubbub_doctor", "name": "echo"}
        answer = put_json(
            origin,
            "/api/v4/users/me/preferences",
            self.token or "",
            [{**preference, "value": marker}],
        )
        for listener in listeners:
            listener.join(6.0)
        if answer.status != 200:
            self.add(
                Finding("event bus: echo", "skip", f"could not publish an event ({answer.status})")
            )
            return False
        for url in sockets:
            arrived = arrivals.get(url)
            latencies[url].append(None if arrived is None else round((arrived - sent) * 1000, 1))
        return True

    def check_idle(self, ping_interval: float) -> None:
        if self.idle_max <= 0:
            return
        if not self.token:
            self.add(
                Finding(
                    "proxy: idle websocket timeout",
                    "skip",
                    "not measured: it needs a system admin's token",
                    fix="Pass --token (or HUBBUB_TOKEN).",
                )
            )
            return
        hs = websocket_handshake(self.target, self.token, {"hubbub_diagnostic": "no_ping"})
        if hs.sock is None:
            return
        self.progress(
            f"holding an idle websocket through the proxy for up to {self.idle_max:g} s "
            "to measure its timeout"
        )
        result = hold_idle(hs, self.idle_max, lambda s: self.progress(f"idle for {s:.0f} s"))
        self.add(
            checks.idle_timeout(
                cut_after=result.cut_after,
                held_for=result.held_for,
                idle_max=self.idle_max,
                ping_interval=ping_interval,
                pings=result.pings,
                close_code=result.close_code,
            )
        )


def _data_tier(data: dict[str, Any]) -> list[Finding]:
    out = []
    database = data.get("database", {})
    if database:
        if database.get("status") != "ok":
            out.append(
                Finding(
                    "database",
                    "fail",
                    f"unreachable: {database.get('error')}",
                    "Nothing can be read or written.",
                    "Check SqlSettings.DataSource and the database server.",
                )
            )
        else:
            lags = [r.get("lag_seconds") or 0.0 for r in database.get("streaming_replicas", [])]
            status: checks.Status = "warn" if any(lag > 5 for lag in lags) else "ok"
            out.append(
                Finding(
                    "database",
                    status,
                    f"{database.get('server_version')}, {database.get('role')}, "
                    f"{len(lags)} streaming replica(s)"
                    + (f", replay lag up to {max(lags):.1f} s" if lags else ""),
                    "A replica far behind serves stale reads." if status == "warn" else "",
                )
            )
    redis = data.get("redis", {})
    if redis.get("used"):
        bus = redis.get("event_bus", {})
        healthy = redis.get("status") == "ok" and bus.get("healthy", True)
        out.append(
            Finding(
                "redis",
                "ok" if healthy else "fail",
                f"role {redis.get('role', '?')}, {redis.get('connected_replicas', 0)} "
                f"replica(s), event bus lag {bus.get('lag_ms', '?')} ms"
                + ("" if healthy else f": {redis.get('error') or bus.get('last_error')}"),
                "" if healthy else "Events between nodes are not delivered.",
                "" if healthy else "Check CacheSettings.RedisAddress and the Redis server.",
            )
        )
    files = data.get("files", {})
    if files:
        if files.get("status") != "ok" or not files.get("shared", True):
            out.append(
                Finding(
                    "file store",
                    "fail",
                    f"{files.get('driver')} at {files.get('location')}: "
                    + (files.get("error") or "; ".join(files.get("problems", []))),
                    "Files uploaded on one node are missing on the others.",
                    "Use S3, or one directory every node mounts (NFS), as FileSettings.Directory.",
                )
            )
        else:
            out.append(
                Finding(
                    "file store",
                    "ok",
                    f"{files.get('driver')} at {files.get('location')}, shared by every node",
                )
            )
    return out
