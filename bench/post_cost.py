"""What one `POST /api/v4/posts` costs hubbub in server CPU, against a cheap request, same run.

For each channel size N: start a real `hubbub serve` (SQLite in a temporary directory, as
`bench.ws_fanout` does), build the fan-out fixture (an admin, a team, a channel with N members
besides the admin), then, as the admin and with no websocket open:

1. baseline: B serial `GET /api/v4/users/me` (authentication, middleware, routing, one read and
   a JSON body: the fixed cost every request pays);
2. serial: M `POST /api/v4/posts`, each sent when the previous one has been answered;
3. paced: M more posts at R posts/s, open loop (`bench.ws_fanout.open_loop`).

Server CPU is utime+stime of the server process (`/proc/<pid>/stat`, all threads) over each
phase, divided by its requests; the table shows the post/baseline ratios and the POST round trip.

    python -m bench.post_cost [-n 1,1000] [-m 300] [-r 50] [--pending-ids] [--py-spy FILE]

Every process started here is stopped by its PID in a `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from tests.support.server import start_server

from bench.fanout_report import machine
from bench.fanout_setup import server_env, setup_hubbub
from bench.ws_fanout import (
    ROOT,
    cpu_seconds,
    open_loop,
    percentile,
    profiler,
    wait_quiet,
    wait_quiet_machine,
)

WARMUP = 20


async def timed(
    pid: int, count: int, one: Callable[[int], Awaitable[float]]
) -> tuple[float, list[float]]:
    """Runs `one(i)` serially `count` times; (server CPU ms per call, sorted round trips ms)."""
    cpu0 = cpu_seconds(pid)
    rtts = sorted([await one(i) for i in range(count)])
    return 1000 * (cpu_seconds(pid) - cpu0) / count, rtts


async def measure(args: argparse.Namespace, n: int, workdir: Path) -> dict[str, Any]:
    env = server_env(n, HUBBUB_EVENT_LOOP=args.loop)
    server = await asyncio.to_thread(start_server, workdir / f"hubbub-{n}", env)
    pid = server.proc.pid
    try:
        async with httpx.AsyncClient(base_url=server.url + "/api/v4", timeout=60) as http:
            fixture = await setup_hubbub(http, n, args.setup_concurrency)
            auth = {"Authorization": f"Bearer {fixture.admin_token}"}

            async def me(_: int) -> float:
                sent = time.monotonic()
                resp = await http.get("/users/me", headers=auth)
                if resp.status_code != 200:
                    raise RuntimeError(f"GET /users/me {resp.status_code}: {resp.text[:200]}")
                return 1000 * (time.monotonic() - sent)

            async def post(index: int, message: str = "") -> float:
                body = {"channel_id": fixture.channel_id, "message": message or f"post {index}"}
                if args.pending_ids:  # as the web app sends them: "<user id>:<ms>"-like
                    body["pending_post_id"] = f"{fixture.channel_id}:{time.time_ns()}"
                sent = time.monotonic()
                resp = await http.post("/posts", json=body, headers=auth)
                if resp.status_code != 201:
                    raise RuntimeError(f"POST /posts {resp.status_code}: {resp.text[:200]}")
                return 1000 * (time.monotonic() - sent)

            await timed(pid, WARMUP, me)
            await timed(pid, WARMUP, post)
            await wait_quiet(pid, 60)
            await wait_quiet_machine([pid], args.wait_machine)
            base_ms, base_rtts = await timed(pid, args.baseline_requests, me)
            spy = Path(args.py_spy) if args.py_spy else None
            with profiler(spy and str(spy.with_stem(f"{spy.stem}-{n}")), pid, args.py_spy_gil):
                serial_ms, serial_rtts = await timed(pid, args.posts, post)
            await wait_quiet(pid, 60)
            await wait_quiet_machine([pid], args.wait_machine)
            paced_rtts: list[float] = []

            async def paced(index: int, message: str) -> None:
                paced_rtts.append(await post(index, message))

            cpu0, wall0 = cpu_seconds(pid), time.monotonic()
            burst = await open_loop(paced, args.posts, args.rate, grace=60)
            paced_cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - wall0
            paced_rtts.sort()
    finally:
        code = await asyncio.to_thread(server.stop)
        if code not in (0, None):
            print(f"hubbub exited with {code}; log: {server.log_path}", file=sys.stderr)
    return {
        "members": n + 1,  # the admin is a member too
        "baseline_cpu_ms": base_ms,
        "baseline_rtt_ms": {"p50": percentile(base_rtts, 50), "p99": percentile(base_rtts, 99)},
        "serial_cpu_ms": serial_ms,
        "serial_ratio": serial_ms / base_ms if base_ms else None,
        "serial_rtt_ms": {"p50": percentile(serial_rtts, 50), "p99": percentile(serial_rtts, 99)},
        "paced_cpu_ms": 1000 * paced_cpu / args.posts,
        "paced_ratio": 1000 * paced_cpu / args.posts / base_ms if base_ms else None,
        "paced_rtt_ms": {"p50": percentile(paced_rtts, 50), "p99": percentile(paced_rtts, 99)},
        "paced_cpu_percent": 100 * paced_cpu / wall,
        "paced_post_errors": burst["post_errors"],
    }


ROWS = [
    ("baseline GET /users/me CPU ms", "baseline_cpu_ms", "{:.3f}"),
    ("  round trip p50 / p99 ms", "baseline_rtt_ms", "{p50:.2f} / {p99:.2f}"),
    ("serial POST CPU ms", "serial_cpu_ms", "{:.2f}"),
    ("  / baseline", "serial_ratio", "{:.1f}x"),
    ("  round trip p50 / p99 ms", "serial_rtt_ms", "{p50:.2f} / {p99:.2f}"),
    ("paced POST CPU ms", "paced_cpu_ms", "{:.2f}"),
    ("  / baseline", "paced_ratio", "{:.1f}x"),
    ("  round trip p50 / p99 ms", "paced_rtt_ms", "{p50:.2f} / {p99:.2f}"),
    ("  server CPU % of a core", "paced_cpu_percent", "{:.0f}"),
    ("  failed posts", "paced_post_errors", "{}"),
]


def table(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    head = ["", *(f"{r['members']} members" for r in results)]
    rows = [head]
    for label, key, fmt in ROWS:
        values = [r[key] for r in results]
        cells = [
            "-" if v is None else fmt.format(**v) if isinstance(v, dict) else fmt.format(v)
            for v in values
        ]
        rows.append([label, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        f"POST cost: M={args.posts} posts serially, then M at R={args.rate:g}/s; "
        f"baseline B={args.baseline_requests} GET /users/me; hubbub on {args.loop}"
        + ("; with pending_post_id" if args.pending_ids else ""),
        "",
    ]
    for row in rows:
        cells = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([row[0].ljust(widths[0]), *cells]))
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="hubbub-post-cost-") as tmp:
        for n in args.members:
            print(f"N={n}: setup ...", file=sys.stderr, flush=True)
            results.append(await measure(args, n, Path(tmp)))
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "-n",
        "--members",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 1000],
        help="channel sizes, comma-separated (default 1,1000; the admin is one more)",
    )
    p.add_argument("-m", "--posts", type=int, default=300, help="posts per phase (default 300)")
    p.add_argument("-r", "--rate", type=float, default=50, help="paced posts/s (default 50)")
    p.add_argument(
        "-b", "--baseline-requests", type=int, default=1000, help="GET /users/me (default 1000)"
    )
    p.add_argument(
        "--pending-ids",
        action="store_true",
        help="send a pending_post_id with every post, as Mattermost's clients do",
    )
    p.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="hubbub's event loop (default uvloop, what `hubbub serve` uses)",
    )
    p.add_argument("--setup-concurrency", type=int, default=8)
    p.add_argument(
        "--wait-machine",
        type=float,
        default=0,
        metavar="S",
        help="on a shared machine, wait up to S seconds for other processes to go quiet "
        "before the baseline and the paced phase (default 0)",
    )
    p.add_argument(
        "--py-spy",
        metavar="FILE",
        help="profile the serial phase with py-spy (FILE gets -<N> before its suffix)",
    )
    p.add_argument("--py-spy-gil", action="store_true", help="profile only GIL-holding samples")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    if min([*args.members, args.posts, args.baseline_requests]) < 1 or args.rate <= 0:
        p.error("N, M, B and R must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(run(args))
    print(table(args, results))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"post_cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    config = {k: v for k, v in vars(args).items() if k != "results"}
    report = {"benchmark": "post_cost", "config": config, "machine": machine(), "runs": results}
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0 if all(r["paced_post_errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
