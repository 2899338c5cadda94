"""Realistic users: how many of Mattermost's load-test users one hubbub node serves within KPIs.

The users (`bench.user_sim`, in `--client-procs` processes) behave like the simulative
controller of Mattermost's load-test tool: its action mix and frequencies, its think times, its
websocket reactions and its 60 s periodic calls. They come online in steps (`--steps`, e.g.
250,500,750,1000); after each step's ramp every request of a `--step-seconds` window is timed.
A step is within the KPIs (Mattermost's ceiling tests) when the average request takes < 100 ms,
p99 < 2 s, < 0.025 % of requests fail (an HTTP error status, a transport error or the tool's 5 s
timeout), and the server closed no websocket. The run stops after the first step outside them
(`--keep-going` runs every step) and reports the largest user count within them.

The fixture, through the REST API: an admin, one team, `--channels` public channels, the users
with personal access tokens, each a member of `--per-user` random channels (the ones it switches
between) besides the team's default channels. Direct channels are made as users open them.

    python -m bench.realistic_users [--quick] [--steps 250,500,...] [--cluster] [--py-spy FILE]

With `--cluster`, three nodes on PostgreSQL + Redis behind nginx (`tests.support.cluster`) serve
the same mix; server CPU is then the nodes' together. `--replicas` (implies `--cluster`) gives
them a PostgreSQL primary with a streaming replica (`tests.support.replicated`) as their read and
search replica, and reports per step which role served the API reads and searches (the nodes'
`hubbub_db_queries_total{query_class, role}`): the share of reads the replica took while
read-your-writes sent each user's reads after its own writes to the primary until the replica
had replayed them (`--synchronous-commit`, the primary's, matters: see `run`). Every process
started here is stopped by its PID in a `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import summary
from bench.baseline_server import raise_open_files
from bench.fanout_setup import add_to_team, bounded, call, new_member, server_env
from bench.ws_fanout import (
    ROOT,
    ClientProc,
    busy_cpu_seconds,
    cpu_seconds,
    percentile,
    profiler,
    wait_quiet,
)

KPI_AVG_MS, KPI_P99_MS, KPI_ERRORS = 100.0, 2000.0, 0.025 / 100
PASSWORD = "realistic-bench-password"


async def build_world(http: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, Any]:
    body = {"email": "admin@example.com", "username": "benchadmin", "password": PASSWORD}
    await call(http, "POST", "/users", json=body)
    login = await call(
        http, "POST", "/users/login", json={"login_id": "benchadmin", "password": PASSWORD}
    )
    admin = login.headers["Token"]
    team = await call(
        http, "POST", "/teams", admin, {"name": "load", "display_name": "Load", "type": "O"}
    )
    team_id = team.json()["id"]
    channels = []
    for c in range(args.channels):
        got = await call(
            http,
            "POST",
            "/channels",
            admin,
            {"team_id": team_id, "name": f"load-{c}", "display_name": f"Load {c}", "type": "O"},
        )
        channels.append(got.json()["id"])
    n = max(args.steps)
    members = await bounded(
        args.setup_concurrency, [partial(new_member, http, admin, i) for i in range(n)]
    )
    user_ids = [u for u, _ in members]
    await add_to_team(http, admin, team_id, user_ids, args.setup_concurrency)
    rng = random.Random(17)
    per_user = [rng.sample(channels, min(args.per_user, len(channels))) for _ in range(n)]
    by_channel: dict[str, list[str]] = defaultdict(list)
    for uid, chosen in zip(user_ids, per_user, strict=True):
        for c in chosen:
            by_channel[c].append(uid)
    for channel, uids in by_channel.items():
        for i in range(0, len(uids), 100):
            await call(
                http, "POST", f"/channels/{channel}/members", admin, {"user_ids": uids[i : i + 100]}
            )
    users = [
        {"id": uid, "token": tok, "channels": chosen}
        for (uid, tok), chosen in zip(members, per_user, strict=True)
    ]
    return {"team_id": team_id, "users": users, "all_user_ids": user_ids, "admin": admin}


async def start_sims(
    args: argparse.Namespace, world_file: Path, n: int, workdir: Path
) -> list[ClientProc]:
    procs = []
    for k in range(args.client_procs):
        start, end = n * k // args.client_procs, n * (k + 1) // args.client_procs
        out = workdir / f"sim-{k}"
        stderr_path = out.with_suffix(".stderr")
        cmd = [
            sys.executable,
            "-m",
            "bench.user_sim",
            "--world",
            str(world_file),
            "--start",
            str(start),
            "--count",
            str(end - start),
            "--rate",
            str(args.rate),
            "--avg-idle",
            str(args.avg_idle),
            "--min-idle",
            str(args.min_idle),
            "--think-scale",
            str(args.think_scale),
            "--uvloop",
        ]
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**28,  # a report line carries every latency of a window
                stderr=stderr,
            )
        procs.append(ClientProc(proc, out, stderr_path))
    return procs


def merge(reports: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    routes: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"lat": [], "errors": 0, "5xx": 0, "timeouts": 0}
    )
    out: dict[str, Any] = {
        "races": 0,
        "ws_closed_by_server": 0,
        "ws_connect_failures": 0,
        "ws_close_codes": defaultdict(int),
        "actions": defaultdict(int),
        "events": defaultdict(int),
        "error_samples": [],
    }
    for r in reports:
        for name, v in r["routes"].items():
            routes[name]["lat"] += v["lat"]
            for key in ("errors", "5xx", "timeouts"):
                routes[name][key] += v[key]
        for key in ("ws_closed_by_server", "ws_connect_failures", "races"):
            out[key] += r[key]
        for key in ("ws_close_codes", "actions", "events"):
            for k, v in r[key].items():
                out[key][k] += v
        out["error_samples"] += r["error_samples"]
    all_lat = sorted(x for v in routes.values() for x in v["lat"])
    requests = len(all_lat)
    errors = sum(v["errors"] for v in routes.values())
    per_route = {}
    for name, v in sorted(routes.items(), key=lambda kv: -len(kv[1]["lat"])):
        lat = sorted(v["lat"])
        per_route[name] = {
            "count": len(lat),
            "share": round(len(lat) / requests, 4) if requests else 0,
            "avg_ms": round(sum(lat) / len(lat), 1) if lat else None,
            "p99_ms": round(percentile(lat, 99), 1) if lat else None,
            "errors": v["errors"],
            "5xx": v["5xx"],
            "timeouts": v["timeouts"],
        }
    out.update(
        requests=requests,
        requests_per_s=round(requests / seconds, 1),
        avg_ms=round(sum(all_lat) / requests, 1) if requests else float("nan"),
        p50_ms=round(percentile(all_lat, 50), 1),
        p99_ms=round(percentile(all_lat, 99), 1),
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        server_errors=sum(v["5xx"] for v in routes.values()),
        timeouts=sum(v["timeouts"] for v in routes.values()),
        routes=per_route,
    )
    out["error_samples"] = out["error_samples"][:5]
    return out


def within_kpis(step: dict[str, Any]) -> bool:
    return (
        step["requests"] > 0
        and step["avg_ms"] < KPI_AVG_MS
        and step["p99_ms"] < KPI_P99_MS
        and step["error_rate"] < KPI_ERRORS
        and step["ws_closed_by_server"] == 0
    )


DbCounts = Callable[[], Awaitable[dict[tuple[str, str], float]]]
WriterTotals = Callable[[], Awaitable[dict[str, tuple[float, float, float]]]]


def writer_totals(node: Any) -> dict[str, tuple[float, float, float]]:
    """SQLite's writer by store method, from a node's metrics: (transactions, seconds waited
    for the writer, seconds held)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    where = {
        "hubbub_db_writer_hold_seconds_count": 0,
        "hubbub_db_writer_wait_seconds_sum": 1,
        "hubbub_db_writer_hold_seconds_sum": 2,
    }
    for family in text_string_to_metric_families(node.metrics_text()):
        for sample in family.samples:
            if sample.name in where:
                totals[sample.labels["method"]][where[sample.name]] += sample.value
    return {method: (n, waited, held) for method, (n, waited, held) in totals.items()}


def writer_use(
    before: dict[str, tuple[float, float, float]],
    after: dict[str, tuple[float, float, float]],
    seconds: float,
) -> dict[str, Any]:
    """Who held SQLite's writer during the window, the largest holders first."""
    methods = []
    for method, (n, waited, held) in after.items():
        n0, waited0, held0 = before.get(method, (0.0, 0.0, 0.0))
        count = int(n - n0)
        if count:
            methods.append(
                {
                    "method": method,
                    "count": count,
                    "held_s": round(held - held0, 3),
                    "avg_hold_ms": round(1000 * (held - held0) / count, 2),
                    "avg_wait_ms": round(1000 * (waited - waited0) / count, 1),
                }
            )
    methods.sort(key=lambda m: -m["held_s"])
    busy = sum(m["held_s"] for m in methods)
    return {"busy_percent": round(100 * busy / seconds, 1), "methods": methods}


def routed_reads(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict:
    """Reads of a window by query class and the role that served them. The replicas' share is
    of the API reads and searches (the routed ones); `fresh` reads (outside API requests:
    sessions, websocket work, background loops) always use the primary and are counted apart."""
    served = {
        f"{cls} {role}": round(after.get((cls, role), 0) - before.get((cls, role), 0))
        for cls, role in sorted(set(before) | set(after))
        if cls in ("read", "search", "fresh")
    }
    routed = {k: n for k, n in served.items() if not k.startswith("fresh ")}
    total = sum(routed.values())
    on_replicas = sum(n for key, n in routed.items() if not key.endswith(" primary"))
    return {
        "served": {k: n for k, n in served.items() if n},
        "total": total,
        "replica_share": round(on_replicas / total, 4) if total else None,
    }


async def run_steps(
    args: argparse.Namespace,
    base: str,
    ws_url: str,
    pids: list[int],
    workdir: Path,
    db_counts: DbCounts | None = None,
    writer: WriterTotals | None = None,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        started = time.monotonic()
        print(f"setup: {max(args.steps)} users ...", file=sys.stderr, flush=True)
        world = await build_world(http, args)
        setup_seconds = time.monotonic() - started
    n = max(args.steps)
    world_file = workdir / "world.json"
    world_file.write_bytes(
        orjson.dumps(
            {**world, "base": base, "ws_url": ws_url, "max_users": n, "procs": args.client_procs}
        )
    )
    for pid in pids:
        await wait_quiet(pid, 60)
    sims = await start_sims(args, world_file, n, workdir)
    steps: list[dict[str, Any]] = []
    try:
        for users in args.steps:
            for k, sim in enumerate(sims):
                share = users * (k + 1) // len(sims) - users * k // len(sims)
                await sim.send(json.dumps({"active": share, "ramp": args.ramp}))
                await sim.line(30, "ack")
            print(f"step {users} users: ramp {args.ramp:g} s ...", file=sys.stderr, flush=True)
            await asyncio.sleep(args.ramp + args.settle)
            for sim in sims:  # start the window clean
                await sim.send(json.dumps({"report": True}))
                await sim.line(60, "report")
            sim_pids = [s.proc.pid for s in sims]
            cpu0, ccpu0 = sum(map(cpu_seconds, pids)), sum(map(cpu_seconds, sim_pids))
            sys0, me0, wall0 = busy_cpu_seconds(), cpu_seconds(os.getpid()), time.monotonic()
            load_before = os.getloadavg()[0]
            counts0 = await db_counts() if db_counts else None
            writer0 = await writer() if writer else None
            last = users == args.steps[-1]
            with profiler(args.py_spy if last or args.profile_every else None, pids[0], False):
                await asyncio.sleep(args.step_seconds)
            reports = []
            for sim in sims:
                await sim.send(json.dumps({"report": True}))
                reports.append((await sim.line(60, "report"))["report"])
            wall = time.monotonic() - wall0
            server_cpu = sum(map(cpu_seconds, pids)) - cpu0
            client_cpu = sum(map(cpu_seconds, sim_pids)) - ccpu0
            other = (busy_cpu_seconds() - sys0) - server_cpu - client_cpu
            other -= cpu_seconds(os.getpid()) - me0
            step = merge(reports, wall)
            step.update(
                users=users,
                seconds=round(wall, 1),
                server_cpu_percent=round(100 * server_cpu / wall, 1),
                server_cpu_ms_per_user_second=round(1000 * server_cpu / (users * wall), 3),
                client_cpu_percent=round(100 * client_cpu / wall, 1),
                other_cpu_percent=round(100 * other / wall, 1),
                loadavg_before=load_before,
            )
            if db_counts and counts0 is not None:
                step["db_reads"] = routed_reads(counts0, await db_counts())
            if writer and writer0 is not None:
                step["sqlite_writer"] = writer_use(writer0, await writer(), wall)
            step["within_kpis"] = within_kpis(step)
            steps.append(step)
            print(step_line(step), file=sys.stderr, flush=True)
            if "db_reads" in step:
                print(f"  reads by role: {step['db_reads']}", file=sys.stderr, flush=True)
            if not step["within_kpis"] and not args.keep_going:
                break
    finally:
        for sim in sims:
            await sim.stop()
    return {"setup_seconds": round(setup_seconds, 1), "steps": steps}


def step_line(s: dict[str, Any]) -> str:
    return (
        f"{s['users']:>6} users  {s['requests_per_s']:>7} req/s  avg {s['avg_ms']} ms  "
        f"p99 {s['p99_ms']} ms  errors {100 * s['error_rate']:.3f} %  5xx {s['server_errors']}  "
        f"ws closed {s['ws_closed_by_server']}  keep-alive races {s['races']}  "
        f"server {s['server_cpu_percent']} %  "
        f"client {s['client_cpu_percent']} %  other {s['other_cpu_percent']} %  "
        f"{'OK' if s['within_kpis'] else 'OUT'}"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = server_env(max(args.steps), "WARN")
    with tempfile.TemporaryDirectory(prefix="hubbub-realistic-") as tmp:
        workdir = Path(tmp)
        if args.cluster:
            from tests.support.cluster import start_cluster

            pair = None
            extra: dict[str, Any] = {}
            if args.replicas:
                from tests.support.replicated import start_replicated

                pair = await asyncio.to_thread(start_replicated)
                # The test servers run with synchronous_commit=off (tests/support/postgres.py):
                # a commit's WAL then reaches the replica only when the WAL writer flushes it
                # (wal_writer_delay, 200 ms), and a user's reads right after its writes stay on
                # the primary that much longer than with PostgreSQL's default.
                for sql in (
                    f"ALTER SYSTEM SET synchronous_commit = {args.synchronous_commit}",
                    "SELECT pg_reload_conf()",
                ):
                    await asyncio.to_thread(pair.primary.psql, sql)
                extra = {
                    "database_url": pair.primary.url,
                    "config_json": {
                        "SqlSettings": {
                            "DriverName": "postgres",
                            "DataSource": pair.primary.url,
                            "DataSourceReplicas": [pair.replica.url],
                            "DataSourceSearchReplicas": [pair.replica.url],
                        }
                    },
                }
            try:
                cluster = await asyncio.to_thread(
                    partial(
                        start_cluster,
                        nodes=3,
                        settings=env,
                        # A websocket and up to one pooled REST connection per user, each two of
                        # nginx's connections (client and upstream).
                        nginx_worker_connections=4 * max(args.steps) + 1024,
                        **extra,
                    )
                )
                try:
                    pids = [node.server.proc.pid for node in cluster]
                    url = cluster.nginx_url
                    ws = f"ws://127.0.0.1:{cluster.nginx_port}/api/v4/websocket"

                    async def db_counts() -> dict[tuple[str, str], float]:
                        return await asyncio.to_thread(queries_by_role, cluster)

                    return await run_steps(args, url + "/api/v4", ws, pids, workdir, db_counts)
                finally:
                    await asyncio.to_thread(cluster.close)
            finally:
                if pair is not None:
                    await asyncio.to_thread(pair.stop)
        from tests.support.node import start_node

        node = await asyncio.to_thread(start_node, workdir / "hubbub", env)
        server = node.server
        try:
            ws = f"ws://127.0.0.1:{server.port}/api/v4/websocket"

            async def writer() -> dict[str, tuple[float, float, float]]:
                return await asyncio.to_thread(writer_totals, node)

            return await run_steps(
                args, server.url + "/api/v4", ws, [server.proc.pid], workdir, writer=writer
            )
        finally:
            await asyncio.to_thread(server.stop)


def queries_by_role(nodes: Any) -> dict[tuple[str, str], float]:
    """Every node's `hubbub_db_queries_total` summed, by (query class, role)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[tuple[str, str], float] = defaultdict(float)
    for node in nodes:
        for family in text_string_to_metric_families(node.metrics_text()):
            for sample in family.samples:
                if sample.name == "hubbub_db_queries_total":
                    key = (sample.labels["query_class"], sample.labels["role"])
                    totals[key] += sample.value
    return dict(totals)


def report(args: argparse.Namespace, result: dict[str, Any], ctx: dict[str, Any]) -> str:
    steps = result["steps"]
    ok = [s["users"] for s in steps if s["within_kpis"]]
    best = max(ok) if ok else 0
    lines: list[tuple[str, Any]] = [
        (
            "mode",
            (
                "3-node cluster (PostgreSQL primary + streaming replica, Redis, nginx; "
                f"synchronous_commit={args.synchronous_commit})"
                if args.replicas
                else "3-node cluster (PostgreSQL + Redis, nginx)"
            )
            if args.cluster
            else "1 node, SQLite",
        ),
        ("steps", ", ".join(str(s["users"]) for s in steps)),
        ("largest user count within KPIs", best),
        ("setup seconds", result["setup_seconds"]),
    ]
    for s in steps:
        lines.append((f"step {s['users']}", step_line(s)))
        top = list(s["routes"].items())[:8]
        for name, r in top:
            lines.append(
                (
                    f"  {name}",
                    f"{r['count']} ({100 * r['share']:.1f} %), avg "
                    f"{r['avg_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']}",
                )
            )
        lines.append(("  server CPU ms per user-second", s["server_cpu_ms_per_user_second"]))
        if "db_reads" in s:
            reads = s["db_reads"]
            share = reads["replica_share"]
            lines.append(
                (
                    "  API reads served by replicas",
                    f"{'-' if share is None else f'{100 * share:.1f} %'} of "
                    f"{reads['total']} API reads "
                    f"({', '.join(f'{k} {n}' for k, n in reads['served'].items())})",
                )
            )
        if "sqlite_writer" in s:
            use = s["sqlite_writer"]
            lines.append(("  SQLite writer held", f"{use['busy_percent']} % of the window"))
            for m in use["methods"][:6]:
                lines.append(
                    (
                        f"    {m['method']}",
                        f"{m['count']} transactions, held {m['held_s']} s (avg "
                        f"{m['avg_hold_ms']} ms), waited avg {m['avg_wait_ms']} ms",
                    )
                )
        if s["error_samples"]:
            lines.append(("  error samples", " | ".join(s["error_samples"][:3])))
        if s["ws_close_codes"]:
            lines.append(("  websocket closes by code", dict(s["ws_close_codes"])))
    ctx["other_cpu_percent"] = max((s["other_cpu_percent"] for s in steps), default=0)
    return summary.block("realistic_users", lines, ctx)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--steps",
        default="250,500,750,1000,1500,2000",
        help="user counts, in order (default 250,500,750,1000,1500,2000)",
    )
    p.add_argument("--step-seconds", type=float, default=120, help="measured window per step")
    p.add_argument("--ramp", type=float, default=30, help="seconds to bring a step's users online")
    p.add_argument("--settle", type=float, default=10, help="seconds after the ramp")
    p.add_argument("--quick", action="store_true", help="smoke run: 20,40 users, 6 s windows")
    p.add_argument("--cluster", action="store_true", help="3 nodes, PostgreSQL + Redis, nginx")
    p.add_argument(
        "--replicas",
        action="store_true",
        help="with --cluster: a primary and a streaming replica; report reads by role",
    )
    p.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="with --replicas: the primary's synchronous_commit (default on, PostgreSQL's)",
    )
    p.add_argument("--keep-going", action="store_true", help="run every step")
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--channels", type=int, default=20, help="public channels (default 20)")
    p.add_argument("--per-user", type=int, default=5, help="channels each user is in")
    p.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="idle-time multiplier (the tool's default 1.0; its ceiling tests 5.4)",
    )
    p.add_argument("--avg-idle", type=float, default=20.0, help="AvgIdleTimeMs / 1000")
    p.add_argument("--min-idle", type=float, default=1.0, help="MinIdleTimeMs / 1000")
    p.add_argument("--think-scale", type=float, default=1.0, help="scales pauses inside actions")
    p.add_argument("--setup-concurrency", type=int, default=8)
    p.add_argument("--py-spy", metavar="FILE", help="profile the (first) node during the last step")
    p.add_argument("--profile-every", action="store_true", help="profile every step (overwrites)")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    args.steps = [int(s) for s in str(args.steps).split(",") if s]
    args.cluster = args.cluster or args.replicas
    if args.quick:
        args.steps, args.step_seconds, args.ramp, args.settle = [20, 40], 6.0, 2.0, 1.0
        args.avg_idle, args.min_idle, args.think_scale = 4.0, 0.5, 0.2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit = raise_open_files()
    if limit < 2 * max(args.steps) + 200:
        print(f"open-file limit {limit} is too low; raise it (ulimit -n)", file=sys.stderr)
        return 2
    ctx = summary.context()
    result = asyncio.run(run(args))
    text = report(args, result, ctx)
    print(text)
    path = summary.save("realistic_users", {"args": vars(args), **ctx, **result}, args.results)
    print(f"wrote {path}")
    return 0 if result["steps"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
