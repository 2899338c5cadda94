"""Many websockets opened at once by a raw client: the upgrade request, the 101 answer and the
first data frame, read byte by byte so that a failure says exactly what arrived (nothing, a
frame other than hello, a hello with another seq, a close).

Server frames are unmasked; control frames (ping) before the first data frame are skipped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.support.wait import wait_until_async


@dataclass
class BurstResult:
    hellos: int = 0
    failures: list[str] = field(default_factory=list)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    opcode = head[0] & 0x0F
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return opcode, await reader.readexactly(size)


@dataclass
class _Round:
    settled: int = 0  # sockets that got their first event or failed
    close: asyncio.Event = field(default_factory=asyncio.Event)


async def _one(port: int, token: str, hello_timeout: float, round_: _Round) -> str | None:
    """None when the first event was hello with seq 0, else what happened. A socket that got
    its hello stays open until every socket of the round has settled."""
    stage = "connect"
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 20), hello_timeout
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /api/v4/websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        stage = "upgrade"
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), hello_timeout)
        if not answer.startswith(b"HTTP/1.1 101"):
            status = answer.split(b"\r\n", 1)[0]
            return f"upgrade answered {status!r}"
        stage = "hello"
        while True:
            opcode, payload = await asyncio.wait_for(_read_frame(reader), hello_timeout)
            if opcode in (0x9, 0xA):
                continue  # ping/pong
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                return f"closed with {code} before any event"
            message = json.loads(payload)
            if "event" not in message:
                continue  # a reply (none is expected: no request was sent)
            if message["event"] != "hello" or message.get("seq") != 0:
                return f"first event {message['event']!r} with seq {message.get('seq')}"
            break
        round_.settled += 1
        await round_.close.wait()
        return None
    except TimeoutError:
        return f"nothing within {hello_timeout}s at the {stage} stage"
    except (OSError, asyncio.IncompleteReadError) as exc:
        return f"{type(exc).__name__} at the {stage} stage: {exc}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def burst(
    port: int,
    tokens: list[str],
    sockets: int,
    hello_timeout: float,
    while_open: Callable[[], Awaitable[None]] | None = None,
) -> BurstResult:
    """Opens `sockets` websockets at once (tokens in turn), keeps every one open until all have
    their first event (or failed) and `while_open` (if given) has run, then closes them all."""
    round_ = _Round()
    tasks = [
        asyncio.create_task(_one(port, tokens[i % len(tokens)], hello_timeout, round_))
        for i in range(sockets)
    ]
    try:
        # Every task ends by itself: with its hello (then waits for `close`) or a failure
        # within `hello_timeout` per stage.
        await wait_until_async(
            lambda: round_.settled + sum(t.done() for t in tasks) >= sockets,
            3 * hello_timeout + 10,
            "every socket of the burst settled",
        )
        if while_open is not None:
            await while_open()
    finally:
        round_.close.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    result = BurstResult()
    for outcome in outcomes:
        if outcome is None:
            result.hellos += 1
        else:
            result.failures.append(str(outcome))
    return result
