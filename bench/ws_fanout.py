"""Websocket fan-out benchmark: hubbub against a bare `websockets` broadcast server, same run.

For each server: start it; measure its RSS with no connections and with N idle authenticated
connections (opened from separate client processes, `bench.ws_clients`); post M messages at R
posts/s, open loop, each stamped with its intended send time; every client times every `posted`
event it receives. Server CPU (utime+stime from procfs) over the burst divided by the deliveries
gives CPU per delivery. `bench.fanout_report` prints the table and writes JSON and a PNG.

    python -m bench.ws_fanout [--quick] [-n N] [-m M] [-r R] [--only hubbub|baseline]

hubbub gets its posts through REST (`POST /api/v4/posts` as the admin); the baseline through a
poster websocket whose frames it broadcasts as they are, shaped like hubbub's `posted` event.
Everything binds 127.0.0.1, every wait has a deadline and every process started here is stopped
by its PID in a `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support.server import ServerProcess, start_server
from websockets.asyncio.client import connect

from bench import fanout_report
from bench.baseline_server import raise_open_files
from bench.fanout_setup import server_env, setup_hubbub

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")

Poster = Callable[[int, str], Coroutine[Any, Any, None]]


# procfs


def stop_process(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def busy_cpu_seconds() -> float:
    """CPU time all cores spent not idle, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK  # minus idle and iowait


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of all threads of `pid` (fields 14 and 15 of its stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


async def wait_quiet(pid: int, timeout: float, below: float = 0.03, window: float = 0.5) -> float:
    """Waits until `pid` uses less than `below` of a core over `window` s; returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)
        if cpu_seconds(pid) - before < below * window:
            break
    return time.monotonic() - started - window


async def wait_quiet_machine(ours: list[int], timeout: float, below: float = 0.25) -> float:
    """Waits until processes other than `ours` and this one use less than `below` of a core
    (a shared machine); returns the wait. The burst's own figure is reported either way."""
    started = time.monotonic()
    pids = [*ours, os.getpid()]
    while time.monotonic() - started < timeout:
        sys0, own0 = busy_cpu_seconds(), sum(map(cpu_seconds, pids))
        await asyncio.sleep(2)
        if (busy_cpu_seconds() - sys0) - (sum(map(cpu_seconds, pids)) - own0) < 2 * below:
            break
    return time.monotonic() - started


# Client processes


@dataclass
class ClientProc:
    proc: asyncio.subprocess.Process
    out: Path
    stderr_path: Path

    async def line(self, timeout: float, what: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = self.stderr_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"client process exited before {what}:\n{err}")
        return dict(json.loads(raw))

    async def send(self, text: str) -> None:
        if self.proc.stdin is not None and self.proc.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.proc.stdin.write(text.encode() + b"\n")
                await self.proc.stdin.drain()

    async def stop(self) -> None:
        await self.send("stop")
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def start_clients(
    args: argparse.Namespace, ws_url: str, tokens_file: Path, workdir: Path, tag: str
) -> list[ClientProc]:
    n, procs = args.connections, max(1, args.client_procs)
    clients: list[ClientProc] = []
    for k in range(procs):
        start, end = n * k // procs, n * (k + 1) // procs
        out = workdir / f"{tag}-clients-{k}"
        stderr_path = out.with_suffix(".stderr")
        cmd = [
            sys.executable,
            "-m",
            "bench.ws_clients",
            "--url",
            ws_url,
            "--tokens",
            str(tokens_file),
            "--start",
            str(start),
            "--count",
            str(end - start),
            "--expect",
            str(args.posts),
            "--out",
            str(out),
        ]
        if args.client_uvloop:
            cmd.append("--uvloop")
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        clients.append(ClientProc(proc, out, stderr_path))
    return clients


# The burst


async def open_loop(post: Poster, count: int, rate: float, grace: float) -> dict[str, Any]:
    """Starts post i at t0 + i/rate whatever happened to earlier ones (open loop); posts not
    answered `grace` seconds after the last one was due are abandoned and count as errors."""
    interval_ns = int(1e9 / rate)
    t0 = time.monotonic_ns() + 20_000_000
    tasks: list[asyncio.Task[None]] = []
    max_lag_ns = 0
    for i in range(count):
        due = t0 + i * interval_ns
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag_ns = max(max_lag_ns, time.monotonic_ns() - due)
        # The intended send time is the stamp, so a late poster counts against latency.
        tasks.append(asyncio.create_task(post(i, f"fanout {i} {due}")))
    left = (t0 + count * interval_ns - time.monotonic_ns()) / 1e9 + grace
    _, pending = await asyncio.wait(tasks, timeout=max(0.1, left))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors = [
        f"{type(e).__name__}: {e}"
        for t in tasks
        if not t.cancelled() and (e := t.exception()) is not None
    ]
    errors += [f"no answer within {grace:g} s after the burst"] * len(pending)
    return {
        "t0_ns": t0,
        "poster_max_lag_ms": round(max_lag_ns / 1e6, 3),
        "post_errors": len(errors),
        "post_error_samples": errors[:3],
    }


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def load_receipts(clients: list[ClientProc]) -> tuple[array[float], array[int]]:
    lat, idx = array("d"), array("I")
    for c in clients:
        lat.frombytes(c.out.with_suffix(".lat").read_bytes())
        idx.frombytes(c.out.with_suffix(".idx").read_bytes())
    return lat, idx


async def measure(
    name: str,
    pid: int,
    ws_url: str,
    post: Poster,
    tokens_file: Path,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    n, m = args.connections, args.posts
    await wait_quiet(pid, args.quiet_timeout)
    await asyncio.sleep(args.settle)
    rss_before = rss_kib(pid)
    clients = await start_clients(args, ws_url, tokens_file, workdir, name)
    try:
        ready = [await c.line(args.connect_timeout, "all clients connected") for c in clients]
        connected = sum(r["connected"] for r in ready)
        if connected != n:
            errors = [e for r in ready for e in r["errors"]]
            raise RuntimeError(f"{name}: only {connected}/{n} clients connected: {errors}")
        # Work a server still does for the connections after their hello (hubbub records
        # presence) is part of connecting, not of the burst: wait until it is done.
        busy_after_connect = await wait_quiet(pid, args.quiet_timeout)
        idle_cpu0, idle_t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(args.settle)
        rss_idle = rss_kib(pid)
        idle_cpu = (cpu_seconds(pid) - idle_cpu0) / (time.monotonic() - idle_t0)
        client_pids = [c.proc.pid for c in clients]
        others_waited = await wait_quiet_machine([pid, *client_pids], args.wait_machine)
        load_before = os.getloadavg()[0]
        sys0, me0 = busy_cpu_seconds(), cpu_seconds(os.getpid())
        sys_cpu0 = cpu_times(pid)[1]
        cpu0, ccpu0, wall0 = cpu_seconds(pid), sum(map(cpu_seconds, client_pids)), time.monotonic()
        with profiler(args.py_spy if name == "hubbub" else None, pid, args.py_spy_gil):
            burst = await open_loop(post, m, args.rate, args.drain_timeout)
            deadline = args.posts / args.rate + args.drain_timeout
            summaries = []
            for c in clients:
                left = max(0.1, deadline - (time.monotonic() - wall0))
                try:
                    summaries.append(await c.line(left, "all posts arrived"))
                except TimeoutError:
                    await c.send("stop")
                    summaries.append(await c.line(10, "its report"))
            cpu1, ccpu1, wall1 = (
                cpu_seconds(pid),
                sum(map(cpu_seconds, client_pids)),
                time.monotonic(),
            )
            sys1, me1 = busy_cpu_seconds(), cpu_seconds(os.getpid())
            sys_cpu1 = cpu_times(pid)[1]
            rss_after = rss_kib(pid)
        lat, idx = load_receipts(clients)
    finally:
        for c in clients:
            await c.stop()
    deliveries = len(lat)
    first_send = burst["t0_ns"]
    last_receipt = max((s["last_receipt_ns"] for s in summaries), default=first_send)
    span = max(1e-9, (last_receipt - first_send) / 1e9)
    ordered = sorted(lat)
    per_post: list[list[float]] = [[] for _ in range(m)]
    for i, ms in zip(idx, lat, strict=True):
        per_post[i].append(ms)
    server_cpu = cpu1 - cpu0
    return {
        "name": name,
        "pid": pid,
        "connections": n,
        "connect_seconds": max(r["seconds"] for r in ready),
        "server_busy_after_connect_seconds": round(busy_after_connect, 2),
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "kib_per_idle_conn": (rss_idle - rss_before) / n,
        "idle_cpu_percent": round(100 * idle_cpu, 1),
        "rss_after_burst_kib": rss_after,
        "posts": m,
        "rate": args.rate,
        **{k: v for k, v in burst.items() if k != "t0_ns"},
        "expected_deliveries": n * m,
        "deliveries": deliveries,
        "missing": sum(s["missing"] for s in summaries),
        "duplicates": sum(s["duplicates"] for s in summaries),
        "closed_early": sum(s["closed_early"] for s in summaries),
        "stopped_at_deadline": any(s["stopped"] for s in summaries),
        "latency_ms": {
            "p50": percentile(ordered, 50),
            "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99),
            "p999": percentile(ordered, 99.9),
            "max": ordered[-1] if ordered else float("nan"),
            "mean": sum(ordered) / len(ordered) if ordered else float("nan"),
        },
        "latency_cdf_ms": [percentile(ordered, q / 10) for q in range(1, 1000)],
        "per_post_p50_ms": [percentile(sorted(v), 50) if v else float("nan") for v in per_post],
        "burst_seconds": round(span, 3),
        "deliveries_per_s": deliveries / span,
        "server_cpu_seconds": round(server_cpu, 3),
        "server_cpu_system_share": round((sys_cpu1 - sys_cpu0) / server_cpu, 3)
        if server_cpu
        else None,
        "server_cpu_us_per_delivery": 1e6 * server_cpu / deliveries if deliveries else None,
        "server_cpu_percent": round(100 * server_cpu / (wall1 - wall0), 1),
        "client_cpu_percent": round(100 * (ccpu1 - ccpu0) / (wall1 - wall0), 1),
        # Everything else on the machine during the burst (other users' jobs): a noisy run
        # shows here. /proc/stat counts all processes, so the benchmark's own are subtracted.
        "other_cpu_percent": round(
            100 * ((sys1 - sys0) - server_cpu - (ccpu1 - ccpu0) - (me1 - me0)) / (wall1 - wall0), 1
        ),
        "loadavg_1min_before": load_before,
        "waited_for_quiet_machine_seconds": round(others_waited, 1),
        "sample_frame": next((s["sample"] for s in summaries if s["sample"]), ""),
    }


# The two servers


async def run_hubbub(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = server_env(args.connections, HUBBUB_EVENT_LOOP=args.loop)
    server: ServerProcess = await asyncio.to_thread(start_server, workdir / "hubbub", env)
    try:
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=server.url + "/api/v4",
            timeout=60,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        ) as http:
            fixture = await setup_hubbub(http, args.connections, args.setup_concurrency)
            setup_seconds = time.monotonic() - started
            tokens_file = workdir / "hubbub-tokens.txt"
            tokens_file.write_text("\n".join(fixture.tokens) + "\n")
            rtts: list[float] = []
            post_timeout = args.posts / args.rate + args.drain_timeout
            auth = {"Authorization": f"Bearer {fixture.admin_token}"}

            async def post(index: int, message: str) -> None:
                sent = time.monotonic()
                resp = await http.post(
                    "/posts",
                    json={"channel_id": fixture.channel_id, "message": message},
                    headers=auth,
                    timeout=post_timeout,  # only the burst's own deadline applies
                )
                rtts.append(1000 * (time.monotonic() - sent))
                if resp.status_code != 201:
                    raise RuntimeError(f"POST /posts {resp.status_code}: {resp.text[:200]}")

            ws_url = f"ws://127.0.0.1:{server.port}/api/v4/websocket"
            result = await measure(
                "hubbub", server.proc.pid, ws_url, post, tokens_file, args, workdir
            )
        rtts.sort()
        result["setup_seconds"] = round(setup_seconds, 1)
        result["post_rtt_ms"] = {"p50": percentile(rtts, 50), "p99": percentile(rtts, 99)}
        return result
    finally:
        code = await asyncio.to_thread(server.stop)
        if code == -9:
            print("hubbub did not stop within 15 s of SIGTERM: killed", file=sys.stderr)
        elif code not in (0, None):
            print(f"hubbub exited with {code}; log: {server.log_path}", file=sys.stderr)


SYNTHETIC_POSTED = {
    "event": "posted",
    "data": {
        "channel_display_name": "Fan-out",
        "channel_name": "fanout-room",
        "channel_type": "O",
        "post": "",
        "sender_name": "@admin",
        "set_online": True,
        "team_id": "x" * 26,
    },
    "broadcast": {"omit_users": None, "user_id": "", "channel_id": "y" * 26, "team_id": ""},
}
SYNTHETIC_POST = {
    "id": "p" * 26,
    "create_at": 1,
    "update_at": 1,
    "edit_at": 0,
    "delete_at": 0,
    "is_pinned": False,
    "user_id": "u" * 26,
    "channel_id": "y" * 26,
    "root_id": "",
    "original_id": "",
    "message": "",
    "type": "",
    "props": {},
    "hashtags": "",
    "pending_post_id": "",
    "reply_count": 0,
    "metadata": {},
}


def frame_maker(sample: str) -> Callable[[str], str]:
    """Frames shaped like hubbub's `posted` event (same size), carrying `message`."""
    event: dict[str, Any] = orjson.loads(sample) if sample else dict(SYNTHETIC_POSTED)
    event.pop("seq", None)
    data = dict(event["data"])
    post = orjson.loads(data["post"]) if data.get("post") else dict(SYNTHETIC_POST)

    def make(message: str) -> str:
        post["message"] = message
        data["post"] = orjson.dumps(post).decode()
        return orjson.dumps({**event, "data": data}).decode()

    return make


async def run_baseline(args: argparse.Namespace, workdir: Path, sample: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.baseline_server"]
    if args.loop == "uvloop":
        cmd.append("--uvloop")
    log_path = workdir / "baseline.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        if not line:
            raise RuntimeError(f"baseline server exited: {log_path.read_text()}")
        port = int(json.loads(line)["port"])
        tokens_file = workdir / "baseline-tokens.txt"
        tokens_file.write_text("\n".join(f"t{i}" for i in range(args.connections)) + "\n")
        make = frame_maker(sample)
        async with connect(
            f"ws://127.0.0.1:{port}/publish", compression=None, open_timeout=10
        ) as publisher:

            async def post(index: int, message: str) -> None:
                await publisher.send(make(message))

            ws_url = f"ws://127.0.0.1:{port}/"
            result = await measure("baseline", proc.pid, ws_url, post, tokens_file, args, workdir)
        result["loop"] = args.loop
        return result
    finally:
        stop_process(proc)


@contextlib.contextmanager
def profiler(path: str | None, pid: int, gil: bool) -> Iterator[None]:
    """With --py-spy FILE, records the server during the burst: samples of all busy threads,
    or with `gil` only of the thread holding the GIL (Python CPU, no GIL waits or syscalls)."""
    if not path:
        yield
        return
    out = Path(path).resolve()
    exe = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if exe is None:
        raise RuntimeError("--py-spy needs py-spy: pip install py-spy")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(out.suffix, "flamegraph")
    cmd = [exe, "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--format", fmt]
    cmd += ["-o", str(out), *(["--gil"] if gil else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes the file and exits
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        print(f"py-spy profile: {out}", file=sys.stderr)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "hubbub"):
            print(f"hubbub: {args.connections} users, setup ...", file=sys.stderr, flush=True)
            results["hubbub"] = await run_hubbub(args, workdir)
        if args.only in (None, "baseline"):
            print("baseline: websockets serve + broadcast() ...", file=sys.stderr, flush=True)
            sample = results.get("hubbub", {}).get("sample_frame", "")
            results["baseline"] = await run_baseline(args, workdir, sample)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", "--connections", type=int, default=1000, help="clients (default 1000)")
    p.add_argument("-m", "--posts", type=int, default=500, help="posts (default 500)")
    p.add_argument("-r", "--rate", type=float, default=50, help="posts per second (default 50)")
    p.add_argument("--quick", action="store_true", help="smoke run: N=100, M=100")
    p.add_argument("--only", choices=["hubbub", "baseline"], help="run one server only")
    p.add_argument("--client-procs", type=int, default=1, help="client processes (default 1)")
    p.add_argument("--no-client-uvloop", dest="client_uvloop", action="store_false")
    p.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="event loop of both servers (default uvloop, what `hubbub serve` uses)",
    )
    p.add_argument("--setup-concurrency", type=int, default=8)
    p.add_argument("--settle", type=float, default=2.0, help="seconds before RSS samples")
    p.add_argument("--connect-timeout", type=float, default=120)
    p.add_argument("--quiet-timeout", type=float, default=60, help="wait for an idle server")
    p.add_argument(
        "--drain-timeout", type=float, default=120, help="wait after the last post (default 120)"
    )
    p.add_argument(
        "--py-spy", metavar="FILE", help="profile hubbub: .svg, .json (speedscope), .txt (raw)"
    )
    p.add_argument(
        "--wait-machine",
        type=float,
        default=0,
        metavar="S",
        help="on a shared machine, wait up to S seconds for other processes to go quiet "
        "before each burst (default 0)",
    )
    p.add_argument("--py-spy-gil", action="store_true", help="profile only GIL-holding samples")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.connections, args.posts = 100, 100
    if min(args.connections, args.posts) < 1 or args.rate <= 0:
        p.error("N, M and R must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit = raise_open_files()
    needed = args.connections + 100
    if limit < needed:
        print(f"open-file limit {limit} < {needed}; raise it (ulimit -n)", file=sys.stderr)
        return 2
    results = asyncio.run(run(args))
    report = fanout_report.build(args, results)
    print(fanout_report.table(report))
    json_path, png_path = fanout_report.save(report, args.results)
    print(f"\nwrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    if png_path is not None:
        print(f"wrote {png_path.relative_to(ROOT) if png_path.is_relative_to(ROOT) else png_path}")
    return 0 if fanout_report.complete(report) else 1


if __name__ == "__main__":
    sys.exit(main())
