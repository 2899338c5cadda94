"""Posts per second into one channel: one hubbub node (SQLite) against Synapse (SQLite), same run.

The shape: `--senders` users (4) post into one channel as fast as each gets its answers (closed
loop, sustained for `--seconds`), while `--receivers` users (10) are connected and time every
post from the start of its request to its arrival. hubbub: `POST /api/v4/posts` and websockets
(`posted` events). Synapse (`matrix-synapse` 1.163.2 from `requirements/synapse.lock`, its own venv
`.venv/synapse`, `make synapse-deps`): `PUT /rooms/{room}/send/m.room.message/{txn}` and `/sync`
long-polls (timeout 30 s, one room, timeline limit 1000). Rate limits of Synapse are lifted; both
servers log at WARNING; everything else is their defaults.

Senders and receivers run in two client processes of their own, on uvloop, so the servers'
CPU (utime+stime of the server process over the window) is not mixed with the clients'.

    python -m bench.posts_per_sec [--quick] [--seconds 30] [--only hubbub|synapse]

Reports posts/s, the hubbub/Synapse ratio, p50/p99 post-to-receive and server CPU ms per post.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import summary
from bench.fanout_setup import setup_hubbub
from bench.ws_fanout import (
    ROOT,
    busy_cpu_seconds,
    cpu_seconds,
    percentile,
    stop_process,
    wait_quiet,
)

# The Synapse venv sits inside the one running the bench (.venv/synapse), like .venv/mmpy-bot.
SYNAPSE_PY = Path(
    os.environ.get("HUBBUB_SYNAPSE_PYTHON", Path(sys.prefix) / "synapse" / "bin" / "python")
)
MARK = "pps"


# --- Client roles (run as `python -m bench.posts_per_sec --role ...`)


async def send_loop(spec: dict[str, Any], index: int, t0: int, t1: int) -> dict[str, Any]:
    ok = errors = 0
    rtts: list[float] = []
    samples: list[str] = []
    async with httpx.AsyncClient(base_url=spec["base"], timeout=30) as http:
        headers = {"Authorization": f"Bearer {spec['tokens'][index]}"}
        await asyncio.sleep(max(0, (t0 - time.monotonic_ns()) / 1e9))
        n = 0
        while time.monotonic_ns() < t1:
            n += 1
            sent = time.monotonic_ns()
            body = f"{MARK} {index} {n} {sent}"
            try:
                if spec["kind"] == "hubbub":
                    resp = await http.post(
                        "/posts",
                        json={"channel_id": spec["room"], "message": body},
                        headers=headers,
                    )
                else:
                    resp = await http.put(
                        f"/rooms/{spec['room']}/send/m.room.message/b{index}t{n}",
                        json={"msgtype": "m.text", "body": body},
                        headers=headers,
                    )
                good = resp.status_code in (200, 201)
                if not good and len(samples) < 3:
                    samples.append(f"{resp.status_code} {resp.text[:200]}")
            except httpx.HTTPError as exc:
                good = False
                if len(samples) < 3:
                    samples.append(f"{type(exc).__name__}: {exc}")
            if good:
                ok += 1
                rtts.append((time.monotonic_ns() - sent) / 1e6)
            else:
                errors += 1
    return {"ok": ok, "errors": errors, "rtts": rtts, "samples": samples}


async def hubbub_receiver(spec: dict[str, Any], token: str, until: int, lat: array[float]) -> int:
    from websockets.asyncio.client import connect

    async with connect(
        spec["ws_url"], additional_headers={"Authorization": f"Bearer {token}"}, compression=None
    ) as ws:
        await ws.recv()  # hello
        spec["ready"] += 1
        while True:
            left = (until - time.monotonic_ns()) / 1e9
            if left <= 0:
                return 0
            try:
                frame = await asyncio.wait_for(ws.recv(decode=False), left)
            except TimeoutError:
                return 0
            now = time.monotonic_ns()
            event = orjson.loads(frame)
            if event.get("event") == "posted":
                message = orjson.loads(event["data"]["post"])["message"]
                note(message, now, lat)


async def synapse_receiver(spec: dict[str, Any], token: str, until: int, lat: array[float]) -> int:
    flt = orjson.dumps(
        {
            "room": {
                "rooms": [spec["room"]],
                "timeline": {"limit": 1000},
                "state": {"lazy_load_members": True},
            },
            "presence": {"types": []},
            "account_data": {"types": []},
        }
    ).decode()
    limited = 0
    async with httpx.AsyncClient(base_url=spec["base"], timeout=60) as http:
        headers = {"Authorization": f"Bearer {token}"}
        first = await http.get("/sync", params={"filter": flt, "timeout": 0}, headers=headers)
        since = first.json()["next_batch"]
        spec["ready"] += 1
        while time.monotonic_ns() < until:
            left_ms = max(0, int((until - time.monotonic_ns()) / 1e6))
            params = {"filter": flt, "since": since, "timeout": min(30000, left_ms)}
            resp = await http.get("/sync", params=params, headers=headers)
            now = time.monotonic_ns()
            body = resp.json()
            since = body["next_batch"]
            room = body.get("rooms", {}).get("join", {}).get(spec["room"], {})
            timeline = room.get("timeline", {})
            limited += bool(timeline.get("limited"))
            for ev in timeline.get("events", []):
                if ev.get("type") == "m.room.message":
                    note(ev.get("content", {}).get("body", ""), now, lat)
    return limited


def note(message: str, now: int, lat: array[float]) -> None:
    parts = message.split(" ")
    if len(parts) == 4 and parts[0] == MARK:
        lat.append((now - int(parts[3])) / 1e6)


async def role_main(args: argparse.Namespace) -> None:
    spec = orjson.loads(Path(args.spec).read_bytes())
    t0, t1 = spec["t0"], spec["t1"]
    if args.role == "senders":
        results = await asyncio.gather(
            *(send_loop(spec, i, t0, t1) for i in range(spec["senders"]))
        )
        out = {
            "ok": sum(r["ok"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "rtts": [x for r in results for x in r["rtts"]],
            "samples": [s for r in results for s in r["samples"]][:3],
        }
    else:
        spec["ready"] = 0
        lat: array[float] = array("d")
        recv = hubbub_receiver if spec["kind"] == "hubbub" else synapse_receiver
        until = t1 + int(spec["drain"] * 1e9)
        tokens = spec["tokens"][spec["senders"] :]
        limited = await asyncio.gather(*(recv(spec, tok, until, lat) for tok in tokens))
        Path(args.out).write_bytes(lat.tobytes())
        out = {"deliveries": len(lat), "limited_syncs": sum(limited)}
    print(json.dumps(out), flush=True)


# --- Servers


def synapse_config(workdir: Path, port: int) -> Path:
    subprocess.run(
        [
            str(SYNAPSE_PY),
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            "localhost",
            "--config-path",
            str(workdir / "hs.yaml"),
            "--generate-config",
            "--report-stats=no",
            "--data-directory",
            str(workdir),
        ],
        check=True,
        capture_output=True,
        cwd=workdir,
    )
    log_config = workdir / "log.yaml"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"p": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
                "handlers": {
                    "f": {
                        "class": "logging.FileHandler",
                        "formatter": "p",
                        "filename": str(workdir / "hs.log"),
                    }
                },
                "root": {"level": "WARNING", "handlers": ["f"]},
                "disable_existing_loggers": False,
            }
        )
    )
    big = {"per_second": 100000, "burst_count": 100000}
    extra = {
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "log_config": str(log_config),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "rc_message": big,
        "rc_registration": big,
        "rc_login": {"address": big, "account": big, "failed_attempts": big},
        "rc_joins": {"local": big, "remote": big},
        "rc_joins_per_room": big,
        "rc_presence": {"per_user": big},
        "bcrypt_rounds": 4,
    }
    path = workdir / "bench.yaml"
    path.write_text(json.dumps(extra))  # JSON is YAML
    return path


async def start_synapse(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.support.ports import free_port

    if not SYNAPSE_PY.exists():
        raise RuntimeError(f"no Synapse venv at {SYNAPSE_PY}: run `make synapse-deps`")
    port = free_port()
    extra = await asyncio.to_thread(synapse_config, workdir, port)
    log = (workdir / "stdout.log").open("wb")
    proc = subprocess.Popen(
        [
            str(SYNAPSE_PY),
            "-m",
            "synapse.app.homeserver",
            "-c",
            str(workdir / "hs.yaml"),
            "-c",
            str(extra),
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"synapse exited: {(workdir / 'stdout.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=1) as r:
            if r.status == 200:
                return proc, url
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("synapse did not answer /health within 120 s")
        await asyncio.sleep(0.2)


async def synapse_fixture(url: str, n: int) -> tuple[str, list[str]]:
    base = url + "/_matrix/client/v3"
    tokens: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for i in range(n):
            resp = await http.post(
                "/register",
                json={
                    "username": f"pps{i}",
                    "password": "pps-bench-pw",
                    "auth": {"type": "m.login.dummy"},
                    "inhibit_login": False,
                },
            )
            resp.raise_for_status()
            tokens.append(resp.json()["access_token"])
        room = await http.post(
            "/createRoom",
            json={"preset": "public_chat", "name": "pps"},
            headers={"Authorization": f"Bearer {tokens[0]}"},
        )
        room.raise_for_status()
        room_id = room.json()["room_id"]
        for tok in tokens[1:]:
            resp = await http.post(f"/join/{room_id}", headers={"Authorization": f"Bearer {tok}"})
            resp.raise_for_status()
    return room_id, tokens


# --- The measurement


async def measure(
    name: str, pid: int, spec: dict[str, Any], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    await wait_quiet(pid, 60)
    start_in = 3.0  # the receivers connect meanwhile
    spec["t0"] = time.monotonic_ns() + int(start_in * 1e9)
    spec["t1"] = spec["t0"] + int(args.seconds * 1e9)
    spec["drain"] = args.drain
    spec_file = workdir / f"{name}-spec.json"
    spec_file.write_bytes(orjson.dumps(spec))
    lat_file = workdir / f"{name}.lat"
    procs = {}
    for role in ("receivers", "senders"):
        procs[role] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.posts_per_sec",
            "--role",
            role,
            "--spec",
            str(spec_file),
            "--out",
            str(lat_file),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            limit=2**28,  # a report line carries every latency of a window
        )
    await asyncio.sleep(max(0, (spec["t0"] - time.monotonic_ns()) / 1e9))
    cpu0, sys0, wall0 = cpu_seconds(pid), busy_cpu_seconds(), time.monotonic()
    ccpu0 = sum(cpu_seconds(p.pid) for p in procs.values())
    await asyncio.sleep(args.seconds)
    cpu1, sys1, wall1 = cpu_seconds(pid), busy_cpu_seconds(), time.monotonic()
    ccpu1 = sum(cpu_seconds(p.pid) for p in procs.values())
    out: dict[str, Any] = {}
    for role, proc in procs.items():
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), args.drain + 60)
        out[role] = json.loads(line or b"{}")
        await proc.wait()
    lat = array("d")
    lat.frombytes(lat_file.read_bytes())
    ordered = sorted(lat)
    wall = wall1 - wall0
    server = cpu1 - cpu0
    posts = out["senders"]["ok"]
    rtts = sorted(out["senders"]["rtts"])
    return {
        "name": name,
        "posts": posts,
        "post_errors": out["senders"]["errors"],
        "error_samples": out["senders"]["samples"],
        "posts_per_s": round(posts / wall, 1),
        "deliveries": len(lat),
        "expected_deliveries": posts * args.receivers,
        "limited_syncs": out["receivers"].get("limited_syncs", 0),
        "post_rtt_ms": {"p50": percentile(rtts, 50), "p99": percentile(rtts, 99)},
        "latency_ms": {
            "p50": percentile(ordered, 50),
            "p99": percentile(ordered, 99),
            "max": ordered[-1] if ordered else float("nan"),
        },
        "server_cpu_percent": round(100 * server / wall, 1),
        "server_cpu_ms_per_post": round(1000 * server / posts, 3) if posts else None,
        "client_cpu_percent": round(100 * (ccpu1 - ccpu0) / wall, 1),
        "other_cpu_percent": round(100 * ((sys1 - sys0) - server - (ccpu1 - ccpu0)) / wall, 1),
    }


async def run_hubbub(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.support.server import start_server

    n = args.senders + args.receivers
    env = {
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
        "MM_LOGSETTINGS_CONSOLELEVEL": "WARN",
    }
    server = await asyncio.to_thread(start_server, workdir / "hubbub", env)
    try:
        async with httpx.AsyncClient(base_url=server.url + "/api/v4", timeout=60) as http:
            fixture = await setup_hubbub(http, n, 4)
        spec = {
            "kind": "hubbub",
            "base": server.url + "/api/v4",
            "ws_url": f"ws://127.0.0.1:{server.port}/api/v4/websocket",
            "room": fixture.channel_id,
            "tokens": fixture.tokens,
            "senders": args.senders,
        }
        return await measure("hubbub", server.proc.pid, spec, args, workdir)
    finally:
        await asyncio.to_thread(server.stop)


async def run_synapse(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    syn_dir = workdir / "synapse"
    syn_dir.mkdir()
    proc, url = await start_synapse(syn_dir)
    try:
        room, tokens = await synapse_fixture(url, args.senders + args.receivers)
        spec = {
            "kind": "synapse",
            "base": url + "/_matrix/client/v3",
            "room": room,
            "tokens": tokens,
            "senders": args.senders,
        }
        return await measure("synapse", proc.pid, spec, args, workdir)
    finally:
        stop_process(proc, 15)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hubbub-pps-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "hubbub"):
            print("hubbub ...", file=sys.stderr, flush=True)
            results["hubbub"] = await run_hubbub(args, workdir)
        if args.only in (None, "synapse"):
            print("synapse ...", file=sys.stderr, flush=True)
            results["synapse"] = await run_synapse(args, workdir)
    return results


def report(args: argparse.Namespace, results: dict[str, Any], ctx: dict[str, Any]) -> str:
    lines: list[tuple[str, Any]] = [
        (
            "shape",
            f"{args.senders} senders (closed loop), {args.receivers} receivers, one "
            f"channel, {args.seconds:g} s",
        ),
    ]
    for name, r in results.items():
        lines.append(
            (
                name,
                f"{r['posts_per_s']} posts/s, post-to-receive p50 {r['latency_ms']['p50']:.1f} ms "
                f"p99 {r['latency_ms']['p99']:.1f} ms, POST p50 {r['post_rtt_ms']['p50']:.1f} ms, "
                f"server {r['server_cpu_ms_per_post']} ms CPU/post at {r['server_cpu_percent']} % "
                f"of a core, client {r['client_cpu_percent']} %, other {r['other_cpu_percent']} %, "
                f"deliveries {r['deliveries']}/{r['expected_deliveries']}, "
                f"errors {r['post_errors']}",
            )
        )
    if "hubbub" in results and "synapse" in results and results["synapse"]["posts_per_s"]:
        ratio = results["hubbub"]["posts_per_s"] / results["synapse"]["posts_per_s"]
        lines.append(("ratio hubbub/synapse (posts/s)", f"{ratio:.1f}x"))
    ctx["other_cpu_percent"] = max((r["other_cpu_percent"] for r in results.values()), default=0)
    return summary.block("posts_per_sec", lines, ctx)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=30, help="sustained window (default 30)")
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--receivers", type=int, default=10)
    p.add_argument("--drain", type=float, default=5, help="receivers wait after the window")
    p.add_argument("--only", choices=["hubbub", "synapse"])
    p.add_argument("--quick", action="store_true", help="smoke run: 5 s windows")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--role", choices=["senders", "receivers"], help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.drain = 5.0, 3.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        import uvloop

        uvloop.run(role_main(args))
        return 0
    ctx = summary.context()
    results = asyncio.run(run(args))
    print(report(args, results, ctx))
    path = summary.save(
        "posts_per_sec", {"args": vars(args), **ctx, "results": results}, args.results
    )
    print(f"wrote {path}")
    return 0 if all(r["posts"] and not r["post_errors"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
