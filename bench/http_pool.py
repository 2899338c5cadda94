"""A small keep-alive HTTP/1.1 client for load generators: one pool of connections to one
host, JSON in and out, nothing else.

httpx's connection pool costs several milliseconds of CPU per request once hundreds of requests
queue for it (it re-scans every queued request against every connection on each change), which
made the load generator the bottleneck of the realistic-users benchmark. This one keeps idle
connections in a LIFO list and waiters in a FIFO queue: O(1) per request.

Like Go's `http.Transport` (the load-test tool's), a request that fails on a reused connection
before any byte of the answer arrives is sent again on a new connection when its method is
idempotent (GET, PUT, DELETE); a POST is not, and the failure is the caller's. `races` counts
those failures on reused connections, retried or not: the server closed an idle connection the
client was about to use.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import orjson

IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})


class HTTPError(Exception):
    pass


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body) if self.body else None


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = 0

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Pool:
    def __init__(self, host: str, port: int, size: int, timeout: float = 5.0) -> None:
        self.host, self.port, self.size, self.timeout = host, port, size, timeout
        self.idle: list[_Conn] = []
        self.open = 0
        self.waiters: asyncio.Queue[asyncio.Future[_Conn | None]] = asyncio.Queue()
        self.races = 0

    async def _checkout(self) -> _Conn:
        while self.idle:
            conn = self.idle.pop()
            if conn.usable():
                return conn
            conn.close()
            self.open -= 1
        if self.open < self.size:
            self.open += 1
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except BaseException:
                self.open -= 1
                raise
            return _Conn(reader, writer)
        waiter: asyncio.Future[_Conn | None] = asyncio.get_running_loop().create_future()
        await self.waiters.put(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._checkin(waiter.result())  # handed over as this task was cancelled
            raise
        return handed if handed is not None else await self._checkout()

    def _discard(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            conn.writer.transport.abort()
        self._checkin(None)

    def _checkin(self, conn: _Conn | None) -> None:
        if conn is not None and not conn.usable():
            conn.close()
            conn = None
        if conn is None:
            self.open -= 1
        while not self.waiters.empty():
            waiter = self.waiters.get_nowait()
            if not waiter.done():
                if conn is None:
                    waiter.set_result(None)  # room for a new connection
                else:
                    waiter.set_result(conn)
                return
        if conn is not None:
            self.idle.append(conn)

    async def request(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> Response:
        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        async with asyncio.timeout(self.timeout):
            for attempt in (0, 1):
                conn = await self._checkout()
                reused = conn.used > 0
                try:
                    resp, keep = await self._exchange(conn, raw)
                except (ConnectionError, asyncio.IncompleteReadError, HTTPError) as exc:
                    self._discard(conn)
                    if reused and isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
                        self.races += 1
                        if method in IDEMPOTENT and attempt == 0:
                            continue
                    raise HTTPError(f"{type(exc).__name__}: {exc}") from exc
                except BaseException:
                    self._discard(conn)
                    raise
                conn.used += 1
                self._checkin(conn) if keep else self._discard(conn)
                return resp
        raise AssertionError("unreachable")

    async def _exchange(self, conn: _Conn, raw: bytes) -> tuple[Response, bool]:
        conn.writer.write(raw)
        await conn.writer.drain()
        status_line = await conn.reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionError("closed before the status line")
        parts = status_line.split(b" ", 2)
        status = int(parts[1])
        length = -1
        chunked = False
        keep = True
        while True:
            line = await conn.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif key == b"connection" and b"close" in value.lower():
                keep = False
        if chunked:
            chunks = []
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await conn.reader.readuntil(b"\r\n")
                    break
                chunks.append(await conn.reader.readexactly(size))
                await conn.reader.readexactly(2)
            data = b"".join(chunks)
        elif length >= 0:
            data = await conn.reader.readexactly(length)
        else:
            data = await conn.reader.read()
            keep = False
        return Response(status, data), keep

    async def close(self) -> None:
        for conn in self.idle:
            with contextlib.suppress(Exception):
                conn.close()
        self.idle.clear()
