"""The benchmark's client process: many websocket clients that time each `posted` event.

It runs apart from the server under test so its CPU is not charged to the server. The parent
(`bench.ws_fanout`) talks to it over stdin/stdout, one JSON object per line:

    child  -> {"ready": true, "connected": n, "failed": f, "seconds": s}   all hellos received
    child  -> {"done": true, ...}                                          every post arrived,
    parent -> "stop"                                                       or the parent gave up

A post's message is `fanout <index> <monotonic_ns at send>`; CLOCK_MONOTONIC is shared by all
processes on one host, so receipt minus send time is the post-to-receive latency. The latencies
(ms, float64) and post indexes (uint32) of every delivery go to `<out>.lat` and `<out>.idx`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.baseline_server import run_client_process

MARK = "fanout"


class Collector:
    """Receipts of every connection of this process."""

    def __init__(self, conns: int, expect: int) -> None:
        self.expect = expect
        self.seen = [bytearray(expect) for _ in range(conns)]
        self.counts = [0] * conns
        self.latencies = array("d")
        self.indexes = array("I")
        self.duplicates = 0
        self.foreign = 0  # posted events that are not ours
        self.closed = 0
        self.complete = 0
        self.first_ns = 0
        self.last_ns = 0
        self.sample = ""
        self.all_done = asyncio.Event()
        if expect == 0 or conns == 0:
            self.all_done.set()

    def receive(self, conn: int, frame: bytes, now_ns: int) -> None:
        event = orjson.loads(frame)
        if event.get("event") != "posted":
            return
        post = orjson.loads(event["data"]["post"])
        parts = str(post.get("message", "")).split(" ")
        if len(parts) != 3 or parts[0] != MARK:
            self.foreign += 1
            return
        index, sent_ns = int(parts[1]), int(parts[2])
        if not self.sample:
            self.sample = frame.decode()
        if index >= self.expect:
            self.foreign += 1
            return
        seen = self.seen[conn]
        if seen[index]:
            self.duplicates += 1
            return
        seen[index] = 1
        self.latencies.append((now_ns - sent_ns) / 1e6)
        self.indexes.append(index)
        if not self.first_ns:
            self.first_ns = now_ns
        self.last_ns = now_ns
        self.counts[conn] += 1
        if self.counts[conn] == self.expect:
            self.complete += 1
            if self.complete == len(self.seen):
                self.all_done.set()

    def summary(self) -> dict[str, Any]:
        return {
            "deliveries": len(self.latencies),
            "missing": sum(self.expect - c for c in self.counts),
            "incomplete_connections": sum(1 for c in self.counts if c < self.expect),
            "duplicates": self.duplicates,
            "foreign": self.foreign,
            "closed_early": self.closed,
            "first_receipt_ns": self.first_ns,
            "last_receipt_ns": self.last_ns,
            "sample": self.sample,
        }


async def open_one(url: str, token: str, timeout: float) -> ClientConnection:
    ws = await connect(
        url,
        additional_headers=[("Authorization", f"Bearer {token}")],
        compression=None,
        ping_interval=None,  # the server pings; the client only answers
        open_timeout=timeout,
        close_timeout=2,
        max_size=2**20,
    )
    try:
        async with asyncio.timeout(timeout):
            hello = orjson.loads(await ws.recv(decode=False))
    except BaseException:
        ws.transport.abort()
        raise
    if hello.get("event") != "hello":
        ws.transport.abort()
        raise RuntimeError(f"expected hello, got {hello.get('event')!r}")
    return ws


async def read_all(ws: ClientConnection, conn: int, collector: Collector) -> None:
    try:
        while True:
            frame = await ws.recv(decode=False)
            collector.receive(conn, frame, time.monotonic_ns())
    except ConnectionClosed:
        collector.closed += 1
        if collector.counts[conn] < collector.expect:
            # This one will never complete: count it so the run ends instead of timing out.
            collector.complete += 1
            if collector.complete == len(collector.seen):
                collector.all_done.set()


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def stdin_stop() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"stop":
            return


async def run(args: argparse.Namespace) -> None:
    tokens = Path(args.tokens).read_text().split()[args.start : args.start + args.count]
    collector = Collector(len(tokens), args.expect)
    conns: list[ClientConnection | None] = [None] * len(tokens)
    failures: list[str] = []
    gate = asyncio.Semaphore(args.concurrency)

    async def open_at(i: int) -> None:
        async with gate:
            try:
                conns[i] = await open_one(args.url, tokens[i], args.open_timeout)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    started = time.monotonic()
    await asyncio.gather(*(open_at(i) for i in range(len(tokens))))
    readers = [
        asyncio.create_task(read_all(ws, i, collector))
        for i, ws in enumerate(conns)
        if ws is not None
    ]
    emit(
        {
            "ready": True,
            "connected": len(readers),
            "failed": len(failures),
            "errors": failures[:5],
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    if failures:
        collector.complete += len(failures)
        if collector.complete >= len(tokens):
            collector.all_done.set()
    stop = asyncio.create_task(stdin_stop())
    done = asyncio.create_task(collector.all_done.wait())
    await asyncio.wait({stop, done}, return_when=asyncio.FIRST_COMPLETED)
    out = Path(args.out)
    with out.with_suffix(".lat").open("wb") as f:
        collector.latencies.tofile(f)
    with out.with_suffix(".idx").open("wb") as f:
        collector.indexes.tofile(f)
    emit({"done": True, "stopped": stop.done() and not done.done(), **collector.summary()})
    if not stop.done():
        await stop  # the parent says when: closing early would show up in the server's CPU
    done.cancel()
    for task in readers:
        task.cancel()
    for ws in conns:
        if ws is not None:
            ws.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", required=True, help="file with one token per line")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--expect", type=int, required=True, help="posts each client should get")
    parser.add_argument("--out", required=True, help="path prefix for the receipt arrays")
    parser.add_argument("--concurrency", type=int, default=100, help="opens at a time")
    parser.add_argument("--open-timeout", type=float, default=30)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    run_client_process(run(args), args.uvloop)


if __name__ == "__main__":
    main()
