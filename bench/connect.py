"""Connecting: N websockets opened at once, hubbub against the bare `websockets` server, same run.

For each server: N authenticated clients (`bench.ws_clients`, `--client-procs` processes, every
connection of a process opened at once) connect and wait for their `hello`. Reported: the time
until every client has its `hello`, the server CPU spent meanwhile, how long the server stays busy
after the last `hello` (until it uses < 3 % of a core over 0.5 s) and the CPU it spends then, and
its idle CPU once quiet (over `--idle` seconds).

    python -m bench.connect [--quick] [-n 1000] [--only hubbub|baseline]

The hubbub fixture is the fan-out benchmark's (`bench.fanout_setup`): N users with personal
access tokens in one team and channel. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import summary
from bench.baseline_server import raise_open_files
from bench.fanout_setup import server_env, setup_hubbub
from bench.ws_fanout import (
    ROOT,
    ClientProc,
    busy_cpu_seconds,
    cpu_seconds,
    rss_kib,
    stop_process,
    wait_quiet,
)


async def connect_all(
    name: str, pid: int, ws_url: str, tokens: Path, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    await wait_quiet(pid, 60)
    rss0 = rss_kib(pid)
    n, procs = args.connections, args.client_procs
    clients = []
    cpu0, sys0, wall0 = cpu_seconds(pid), busy_cpu_seconds(), time.monotonic()
    for k in range(procs):
        start, end = n * k // procs, n * (k + 1) // procs
        out = workdir / f"{name}-conn-{k}"
        stderr_path = out.with_suffix(".stderr")
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.ws_clients",
                "--url",
                ws_url,
                "--tokens",
                str(tokens),
                "--start",
                str(start),
                "--count",
                str(end - start),
                "--expect",
                "0",
                "--out",
                str(out),
                "--concurrency",
                str(end - start),
                "--uvloop",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        clients.append(ClientProc(proc, out, stderr_path))
    try:
        ready = [await c.line(args.timeout, "all hellos") for c in clients]
        cpu_connect = cpu_seconds(pid) - cpu0
        wall_ready = time.monotonic() - wall0
        connected = sum(r["connected"] for r in ready)
        cpu1 = cpu_seconds(pid)
        busy = await wait_quiet(pid, 120)
        cpu_after = cpu_seconds(pid) - cpu1
        cpu2, t2 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(args.idle)
        idle_pct = 100 * (cpu_seconds(pid) - cpu2) / (time.monotonic() - t2)
        rss1 = rss_kib(pid)
        other = (busy_cpu_seconds() - sys0) - (cpu_seconds(pid) - cpu0)
        other_pct = 100 * other / (time.monotonic() - wall0)
    finally:
        for c in clients:
            await c.stop()
    return {
        "name": name,
        "connections": n,
        "connected": connected,
        "failed": sum(r["failed"] for r in ready),
        "errors": [e for r in ready for e in r["errors"]][:3],
        "seconds_to_all_hello": max(r["seconds"] for r in ready),
        "wall_seconds_incl_client_start": round(wall_ready, 3),
        "server_cpu_connect_seconds": round(cpu_connect, 3),
        "server_cpu_ms_per_connection": round(1000 * cpu_connect / max(1, connected), 3),
        "server_busy_after_last_hello_seconds": round(busy, 2),
        "server_cpu_after_last_hello_seconds": round(cpu_after, 3),
        "server_idle_cpu_percent": round(idle_pct, 1),
        "kib_per_connection": round((rss1 - rss0) / max(1, connected), 1),
        "other_cpu_percent": round(other_pct, 1),
    }


async def run_hubbub(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.support.server import start_server

    env = server_env(args.connections, "WARN")
    server = await asyncio.to_thread(start_server, workdir / "hubbub", env)
    try:
        async with httpx.AsyncClient(base_url=server.url + "/api/v4", timeout=60) as http:
            fixture = await setup_hubbub(http, args.connections, 8)
        tokens = workdir / "hubbub-tokens.txt"
        tokens.write_text("\n".join(fixture.tokens) + "\n")
        ws_url = f"ws://127.0.0.1:{server.port}/api/v4/websocket"
        return await connect_all("hubbub", server.proc.pid, ws_url, tokens, args, workdir)
    finally:
        await asyncio.to_thread(server.stop)


async def run_baseline(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_server", "--uvloop"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        port = int(json.loads(line)["port"])
        tokens = workdir / "baseline-tokens.txt"
        tokens.write_text("\n".join(f"t{i}" for i in range(args.connections)) + "\n")
        ws_url = f"ws://127.0.0.1:{port}/"
        return await connect_all("baseline", proc.pid, ws_url, tokens, args, workdir)
    finally:
        stop_process(proc)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hubbub-connect-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "hubbub"):
            print(f"hubbub: {args.connections} users, setup ...", file=sys.stderr, flush=True)
            results["hubbub"] = await run_hubbub(args, workdir)
        if args.only in (None, "baseline"):
            print("baseline ...", file=sys.stderr, flush=True)
            results["baseline"] = await run_baseline(args, workdir)
    return results


def report(args: argparse.Namespace, results: dict[str, Any], ctx: dict[str, Any]) -> str:
    lines: list[tuple[str, Any]] = [("connections opened at once", args.connections)]
    for name, r in results.items():
        lines.append(
            (
                name,
                f"all {r['connected']}/{r['connections']} hellos in {r['seconds_to_all_hello']} s, "
                f"server CPU {r['server_cpu_ms_per_connection']} ms/connection, "
                f"then busy {r['server_busy_after_last_hello_seconds']} s "
                f"({r['server_cpu_after_last_hello_seconds']} CPU-s) after the last hello, "
                f"idle {r['server_idle_cpu_percent']} %, {r['kib_per_connection']} KiB/connection",
            )
        )
    if "hubbub" in results and "baseline" in results:
        h, b = results["hubbub"], results["baseline"]
        ratio = h["seconds_to_all_hello"] / max(1e-9, b["seconds_to_all_hello"])
        lines.append(("ratio hubbub/baseline (time to all hellos)", f"{ratio:.2f}x"))
    ctx["other_cpu_percent"] = max((r["other_cpu_percent"] for r in results.values()), default=0)
    return summary.block("connect", lines, ctx)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", "--connections", type=int, default=1000)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--idle", type=float, default=5, help="seconds measured once quiet")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--only", choices=["hubbub", "baseline"])
    p.add_argument("--quick", action="store_true", help="smoke run: N=100")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.connections, args.idle = 100, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if raise_open_files() < args.connections + 100:
        print("open-file limit too low; raise it (ulimit -n)", file=sys.stderr)
        return 2
    ctx = summary.context()
    results = asyncio.run(run(args))
    print(report(args, results, ctx))
    path = summary.save("connect", {"args": vars(args), **ctx, "results": results}, args.results)
    print(f"wrote {path}")
    return 0 if all(r["connected"] == r["connections"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
