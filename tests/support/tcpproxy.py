"""A loopback TCP proxy that a test controls: it can cut every connection and refuse new ones.

It stands for the network between a client and the server. `cut()` resets both sides of every
live connection (neither peer gets a websocket close frame, as when a phone loses its network)
and refuses new connections until `restore()`. `freeze()` is the silent kind of failure: the
live connections stay open but carry nothing more in either direction, while new connections
work normally (a client that notices reconnects while the server still thinks it is there).
It runs its own event loop in a daemon thread so that synchronous tests and subprocess clients
can use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TCPProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0  # bound by start(): the kernel picks it, so no other process can race
        self.accepted = 0  # connections forwarded to the target since start
        self.refused = 0  # connections reset while cut
        self._refusing = False
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._frozen: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # Control (called from the test's thread)

    def start(self) -> TCPProxy:
        self._thread.start()
        self._call(self._start)
        return self

    def cut(self) -> int:
        """Resets every live connection and refuses new ones; returns how many were cut."""
        return self._call(self._cut)

    def restore(self) -> None:
        self._refusing = False

    def freeze(self) -> int:
        """Black-holes every live connection (data in both directions is dropped, nothing is
        closed); returns how many. New connections are not affected."""
        return self._call(self._freeze)

    @property
    def live(self) -> int:
        return self._call(lambda: _ready(len(self._pairs)))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # Inside the proxy's loop

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _cut(self) -> int:
        self._refusing = True
        pairs = list(self._pairs)
        self._pairs.clear()
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    async def _freeze(self) -> int:
        self._frozen |= self._pairs
        return len(self._pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        frozen = self._frozen.__contains__
        await asyncio.gather(
            _pump(reader, up_writer, lambda: frozen(pair)),
            _pump(up_reader, writer, lambda: frozen(pair)),
            return_exceptions=True,
        )
        self._pairs.discard(pair)
        self._frozen.discard(pair)
        for w in pair:
            with contextlib.suppress(Exception):
                w.close()


async def _ready(value: T) -> T:
    return value


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frozen: Callable[[], bool]
) -> None:
    try:
        while data := await reader.read(65536):
            if frozen():
                continue  # swallowed by a dead network path
            writer.write(data)
            await writer.drain()
    finally:
        # Pass a clean end of stream on (half close), as a real network path would.
        with contextlib.suppress(Exception):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with an RST (SO_LINGER 0): the peer sees the path die, not a clean close."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    writer.transport.abort()
