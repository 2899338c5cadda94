"""A uvicorn websocket protocol that shows the application what ASGI hides.

ASGI delivers only data frames, but keep-alive diagnostics need the time of the last frame of
any kind (an unsolicited Pong counts) and the ability to send Ping frames; and fan-out needs to
write a text frame without the cost of an ASGI `send` (a coroutine, uvicorn's and websockets'
framing objects) for every event. This subclass of uvicorn's sans-I/O websocket protocol puts a
`FrameLink` into the connection scope under `scope["extensions"]["hubbub.frames"]`.

`FrameLink.write_text` frames the payload itself: a server frame is unmasked and hubbub
negotiates no extension (`ws_per_message_deflate=False`), so a text frame is a 2-, 4- or 10-byte
header and the payload, exactly what websockets would produce. It writes to the transport at
once, as `websockets.broadcast()` does, and answers False instead (the caller keeps the frame)
while the transport is paused for flow control (the peer stopped reading) or once a close was
sent (`can_write()`).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Opcode
from websockets.protocol import Protocol

_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
_FIN_TEXT = 0x81
# Headers of text frames shorter than this, built once (~200 KiB): packing a header costs more
# than the rest of a write, and most events are a few hundred bytes.
_TABLE_SIZE = 4096
_TEXT_HEADERS = [bytes((_FIN_TEXT, n)) for n in range(126)] + [
    _HEADER_16.pack(_FIN_TEXT, 126, n) for n in range(126, _TABLE_SIZE)
]


class FrameLink:
    """What the application can see of and do on the raw websocket."""

    __slots__ = (
        "_flag",
        "_protocol",
        "_transport",
        "close_frame_code",
        "got_close_frame",
        "last_frame_at",
        "lost",
        "pings",
    )

    def __init__(self, protocol: HubbubWebSocketProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._flag: _Flag = protocol.writable  # type: ignore[assignment]
        self.last_frame_at = protocol.loop.time()
        self.got_close_frame = False
        self.close_frame_code: int | None = None
        self.pings = 0
        self.lost = False  # the transport is gone (connection_lost)

    def send_ping(self) -> None:
        protocol = self._protocol
        if protocol.transport is None or protocol.transport.is_closing():
            return
        if protocol.close_sent or protocol.conn.close_sent is not None:
            return
        self.pings += 1
        protocol.conn.send_ping(struct.pack("!I", self.pings))
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))

    def send_close(self, code: int) -> None:
        """Writes a close frame now, even while the transport is paused for flow control.

        The ASGI `websocket.close` waits until the transport is writable, which never happens
        for a peer that stopped reading. This does what uvicorn's close does, minus the wait.
        """
        protocol = self._protocol
        if protocol.transport is None or protocol.transport.is_closing() or protocol.close_sent:
            return
        protocol.conn.send_close(code)
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = True
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code})

    def abort(self) -> None:
        """Drops the TCP connection at once (no close handshake)."""
        if self._protocol.transport is not None:
            self._protocol.transport.abort()

    def can_write(self) -> bool:
        """True when a frame written now goes out in order: open, not paused, no close sent.
        (Plain attributes only, as `write_text` checks the same on every delivery. uvicorn
        closes the transport only after a close frame, and an abort is followed by
        `connection_lost`.)"""
        return self._flag._set and not self._protocol.close_sent and not self.lost

    def closed(self) -> bool:
        """Nothing more may be written: a close was sent or the transport is going away."""
        protocol = self._protocol
        return (
            self.lost
            or protocol.close_sent
            or protocol.transport is None
            or protocol.transport.is_closing()
        )

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()

    def write_text(self, payload: bytes) -> bool:
        """Writes one text frame if it goes out in order now (`can_write()`, inlined: this is
        called once per delivery); False when it was not written and the caller must keep it.
        A transport that fails under the write counts as written: the link is lost."""
        if not self._flag._set or self._protocol.close_sent or self.lost:
            return False
        size = len(payload)
        if size < _TABLE_SIZE:
            header = _TEXT_HEADERS[size]
        elif size < 65536:
            header = _HEADER_16.pack(_FIN_TEXT, 126, size)
        else:
            header = _HEADER_64.pack(_FIN_TEXT, 127, size)
        try:
            self._transport.write(header + payload)
        except Exception:
            # uvloop raises on a transport that failed earlier in this tick (connection_lost,
            # which sets `lost`, comes later). Fan-out to everyone else must go on; the read
            # side sees the disconnect and closes this connection.
            self.lost = True
        return True


class _Inbox:
    """The part of `asyncio.Queue` uvicorn uses for received messages (one reader: the app),
    without the Queue's three deques and Event: about 2.4 KiB less per connection."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """`asyncio.Event` as uvicorn uses it for `writable`, with waiters only while someone
    waits (an Event keeps an empty deque per connection, ~0.7 KiB)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class HubbubWebSocketProtocol(WebSocketsSansIOProtocol):
    link: FrameLink | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lighter stand-ins for what uvicorn keeps per connection (see the classes above).
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self._forget_handshake()

    def _forget_handshake(self) -> None:
        """Drops what only the handshake needed (~4 KiB per connection, kept for hours).

        uvicorn keeps the parsed upgrade request and the response; websockets' server parser
        keeps the request too, as a local of the generator that goes on to parse frames. That
        generator is replaced by a fresh frame parser, which is the same state provided no
        frame byte has arrived yet: a client may not send frames before it has read the 101
        response, which was written just now. If bytes are already buffered, nothing changes.
        """
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        conn = self.conn
        if not conn.reader.buffer and not conn.reader.eof and conn.parser_exc is None:
            conn.parser = Protocol.parse(conn)
            next(conn.parser)

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.link.last_frame_at = self.loop.time()
        super().data_received(data)

    def handle_close(self, event: Any) -> None:
        # Remember that a close frame arrived, to tell a clean client close from a vanished peer.
        if self.link is not None and event.opcode == Opcode.CLOSE:
            self.link.got_close_frame = True
            if self.conn.close_rcvd is not None:
                self.link.close_frame_code = self.conn.close_rcvd.code
        super().handle_close(event)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.link.lost = True
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if getattr(self, "scope", None) is not None and self.handshake_complete is False:
            self.link = FrameLink(self)
            extensions: dict[str, Any] = self.scope["extensions"]
            extensions["hubbub.frames"] = self.link
