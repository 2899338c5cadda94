"""The reconnect-storm benchmark's client process: websockets that resume when they lose their
node, and check that nothing went missing.

Each connection remembers its `connection_id` (from `hello`), the node that served it
(`server_hostname`) and the last `seq`; every `seq` must follow the one before (a gap is counted).
When its socket closes it reconnects through nginx after a random delay in [0, `--jitter`) s, then
every second, with `connection_id` and the next `sequence_number`: the first frame tells a resume
(a missed event, or the answer to the `ping` it sends at once) from a fresh `hello` (the server
could not resume it). Posts carry `storm <index> <ns>`; at the end each connection's indexes are
checked against the ones the parent says were posted.

    child  -> {"ready": true, "connected": n, "by_node": {...}, ...}
    parent -> {"stop": true, "posted": [indexes]}
    child  -> {"done": true, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.baseline_server import run_client_process


@dataclass
class Conn:
    token: str
    connection_id: str = ""
    node: str = ""
    first_node: str = ""
    seq: int = -1
    gaps: int = 0
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    lost_at_ns: int = 0
    back_at_ns: int = 0
    outcome: str = ""  # "", "resumed" or "fresh"
    attempts: int = 0


async def open_ws(url: str, conn: Conn, resume: bool) -> ClientConnection:
    target = url
    if resume:
        target += f"?connection_id={conn.connection_id}&sequence_number={conn.seq + 1}"
    return await connect(
        target,
        additional_headers={"Authorization": f"Bearer {conn.token}"},
        compression=None,
        ping_interval=None,
        open_timeout=10,
        close_timeout=1,
        max_size=2**22,
    )


def take(conn: Conn, frame: dict[str, Any]) -> None:
    if "seq_reply" in frame:  # the answer to the ping sent on resuming: which node took it
        conn.node = (frame.get("data") or {}).get("node_id", conn.node)
    if "seq" in frame and frame.get("event"):
        seq = int(frame["seq"])
        if conn.seq >= 0 and seq != conn.seq + 1:
            conn.gaps += 1
        conn.seq = seq
    if frame.get("event") == "posted":
        message = orjson.loads(frame["data"]["post"]).get("message", "")
        parts = message.split(" ")
        if len(parts) == 3 and parts[0] == "storm":
            index = int(parts[1])
            if index in conn.seen:
                conn.duplicates += 1
            conn.seen.add(index)


async def live(url: str, conn: Conn, jitter: float, stop: asyncio.Event) -> None:
    ws = await open_ws(url, conn, resume=False)
    hello = orjson.loads(await ws.recv())
    conn.connection_id = hello["data"]["connection_id"]
    conn.node = conn.first_node = hello["data"].get("server_hostname", "")
    conn.seq = 0
    while not stop.is_set():
        try:
            async for raw in ws:
                take(conn, orjson.loads(raw))
        except ConnectionClosed:
            pass
        if stop.is_set():
            return
        conn.lost_at_ns = time.monotonic_ns()
        await asyncio.sleep(random.uniform(0, jitter))
        while not stop.is_set():
            conn.attempts += 1
            try:
                ws = await open_ws(url, conn, resume=True)
                # Asking for a reply tells a resumed connection from one waiting for events.
                await ws.send(orjson.dumps({"action": "ping", "seq": 1}).decode())
                first = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                break
            except (OSError, TimeoutError, ConnectionClosed, Exception):
                await asyncio.sleep(1)
        else:
            return
        conn.back_at_ns = time.monotonic_ns()
        if first.get("event") == "hello":
            conn.outcome = "fresh"
            conn.connection_id = first["data"]["connection_id"]
            conn.seq = 0
        else:
            conn.outcome = conn.outcome or "resumed"
            take(conn, first)
        if first.get("event") == "hello":
            conn.node = first["data"].get("server_hostname", conn.node)


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    tokens = Path(args.tokens).read_text().split()[args.start : args.start + args.count]
    conns = [Conn(t) for t in tokens]
    stop = asyncio.Event()
    gate = asyncio.Semaphore(100)
    started: list[asyncio.Task[None]] = []
    failures: list[str] = []

    async def begin(conn: Conn) -> None:
        async with gate:
            ws = asyncio.create_task(live(args.url, conn, args.jitter, stop))
            started.append(ws)
            deadline = time.monotonic() + args.open_timeout
            while not conn.connection_id and not ws.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if ws.done() and ws.exception() is not None:
                failures.append(repr(ws.exception()))

    t0 = time.monotonic()
    await asyncio.gather(*(begin(c) for c in conns))
    emit(
        {
            "ready": True,
            "connected": sum(1 for c in conns if c.connection_id),
            "failed": len(failures),
            "errors": failures[:3],
            "by_node": dict(Counter(c.first_node for c in conns if c.connection_id)),
            "seconds": round(time.monotonic() - t0, 2),
        }
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    msg: dict[str, Any] = {}
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg.get("stop"):
            break
    stop.set()
    posted = set(msg.get("posted", []))
    lost = [c for c in conns if c.lost_at_ns]
    emit(
        {
            "done": True,
            "lost": len(lost),
            "resumed": sum(1 for c in lost if c.outcome == "resumed"),
            "fresh": sum(1 for c in lost if c.outcome == "fresh"),
            "unresolved": sum(1 for c in lost if not c.outcome),
            "back_at_ns": [c.back_at_ns for c in lost if c.outcome],
            "lost_from": dict(Counter(c.first_node for c in lost)),
            "resumed_on": dict(Counter(c.node for c in lost if c.outcome)),
            "attempts": sum(c.attempts for c in lost),
            "gaps": sum(c.gaps for c in conns),
            "duplicates": sum(c.duplicates for c in conns),
            "missing": sum(len(posted - c.seen) for c in conns if c.connection_id),
            "missing_on_lost": sum(len(posted - c.seen) for c in lost),
            "missing_by_post": dict(
                Counter(i for c in conns if c.connection_id for i in posted - c.seen)
            ),
        }
    )
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--jitter", type=float, default=1.0)
    p.add_argument("--open-timeout", type=float, default=120, help="per connection, for hello")
    args = p.parse_args()
    run_client_process(run(args), use_uvloop=True)


if __name__ == "__main__":
    main()
