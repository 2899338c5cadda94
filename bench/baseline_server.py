"""The benchmark's baseline: a bare `websockets` broadcast server, nothing else.

Clients connect to `/` and get one `hello` frame; a poster connects to `/publish` and every text
frame it sends is passed to `websockets.broadcast()` for all clients, as is. No auth, no storage,
no per-connection sequence numbers: the floor any Python fan-out server is measured against.

Run: `python -m bench.baseline_server [--uvloop]`; it binds a free 127.0.0.1 port and prints
`{"port": N}` on stdout once it listens, then runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

HELLO = '{"event":"hello","data":{"server_version":"baseline"},"broadcast":{},"seq":0}'


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_client_process(main: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    """The entry of a benchmark's client process: as many open files as allowed, then `main` on
    uvloop or asyncio until it ends or the process is interrupted."""
    raise_open_files()
    with contextlib.suppress(KeyboardInterrupt):
        if use_uvloop:
            import uvloop

            uvloop.run(main)
        else:
            asyncio.run(main)


async def run() -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/publish":
            async for frame in ws:
                broadcast(clients, frame)
            return
        await ws.send(HELLO)
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # Compression off, as in hubbub (`ws_per_message_deflate=False`) and the calibration runs.
    async with serve(handler, "127.0.0.1", 0, compression=None, backlog=2048) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (default: asyncio)")
    args = parser.parse_args()
    raise_open_files()
    if args.uvloop:
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
    sys.exit(0)
