"""Read cost: server CPU per request for the reads Mattermost's load-test users make most.

    python -m bench.read_cost [-n USERS] [-c COUNT] [--py-spy FILE]

A real `hubbub serve` (SQLite in a temporary directory) with the fan-out fixture
(`bench/fanout_setup.py`: an admin, a team, a channel of N users), then, as one of the users
and one request at a time (serial, one keep-alive connection), COUNT requests of each route:
`GET /users/me` (what every request pays), `POST /users/ids` and `POST /users/status/ids` with
five ids (the web app's answer to a `typing` or `posted` event from a user it does not know),
`GET /users/{id}/image` (asked for every author of a page of posts), `GET /channels/{id}/stats`
and a page of the channel's posts. Server CPU is utime+stime of the server process
(`/proc/<pid>/stat`) over each route's requests; the table shows it per request and the round
trip p50. Nothing here asserts a time; the JSON goes to `bench/results/read_cost-*.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.support.server import start_server

from bench import summary
from bench.fanout_setup import server_env, setup_hubbub
from bench.post_cost import timed
from bench.ws_fanout import ROOT, percentile, profiler, wait_quiet

WARMUP = 50


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = server_env(args.users)
    server = await asyncio.to_thread(start_server, workdir / "hubbub", env)
    pid = server.proc.pid
    if args.cpu is not None:  # every thread of the server on one CPU
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), {args.cpu})
    results: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=server.url + "/api/v4", timeout=60) as http:
            fixture = await setup_hubbub(http, args.users, 8)
            auth = {"Authorization": f"Bearer {fixture.tokens[0]}"}
            ids = fixture.user_ids[:5]
            channel = fixture.channel_id
            for i in range(30):
                resp = await http.post(
                    "/posts",
                    json={"channel_id": channel, "message": f"post {i}"},
                    headers={"Authorization": f"Bearer {fixture.tokens[i % 5]}"},
                )
                resp.raise_for_status()
            routes: list[tuple[str, str, str, Any]] = [
                ("GET /users/me", "GET", "/users/me", None),
                ("POST /users/ids", "POST", "/users/ids", ids),
                ("POST /users/status/ids", "POST", "/users/status/ids", ids),
                ("GET /users/{id}/image", "GET", f"/users/{ids[1]}/image", None),
                ("GET /channels/{id}/stats", "GET", f"/channels/{channel}/stats", None),
                ("GET /channels/{id}/posts", "GET", f"/channels/{channel}/posts?per_page=30", None),
            ]
            for name, method, path, body in routes:

                async def one(
                    _: int, method: str = method, path: str = path, body: Any = body
                ) -> float:
                    sent = time.monotonic()
                    resp = await http.request(method, path, json=body, headers=auth)
                    if resp.status_code != 200:
                        raise RuntimeError(f"{method} {path} {resp.status_code}: {resp.text[:200]}")
                    return 1000 * (time.monotonic() - sent)

                await timed(pid, WARMUP, one)
                await wait_quiet(pid, 60)
                spy = Path(args.py_spy) if args.py_spy else None
                slug = (
                    name.split()[1].strip("/").replace("/", "_").replace("{", "").replace("}", "")
                )
                with profiler(spy and str(spy.with_stem(f"{spy.stem}-{slug}")), pid, False):
                    cpu_ms, rtts = await timed(pid, args.count, one)
                results[name] = {"cpu_ms": cpu_ms, "rtt_p50_ms": percentile(rtts, 50)}
    finally:
        code = await asyncio.to_thread(server.stop)
        if code not in (0, None):
            print(f"hubbub exited with {code}; log: {server.log_path}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--users", type=int, default=50)
    parser.add_argument("-c", "--count", type=int, default=1000, help="requests per route")
    parser.add_argument("--quick", action="store_true", help="-n 10 -c 100")
    parser.add_argument("--py-spy", metavar="FILE", help="record each route's requests")
    parser.add_argument("--cpu", type=int, help="pin the server's threads to this CPU")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.count = 10, 100
    ctx = summary.context()
    with tempfile.TemporaryDirectory(prefix="hubbub-read-cost-") as tmp:
        results = asyncio.run(measure(args, Path(tmp)))
    lines = [
        (name, f"{r['cpu_ms']:.3f} ms CPU/request, round trip p50 {r['rtt_p50_ms']:.2f} ms")
        for name, r in results.items()
    ]
    print(summary.block("read_cost", lines, ctx))
    config = {k: v for k, v in vars(args).items() if k != "results"}
    path = summary.save("read_cost", {"args": config, **ctx, "routes": results}, args.results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
