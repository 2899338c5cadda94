"""A uvicorn websocket protocol that shows the application what ASGI hides: control frames.

ASGI delivers only data frames, but keep-alive diagnostics need the time of the last frame of
any kind (an unsolicited Pong counts) and the ability to send Ping frames. This subclass of
uvicorn's sans-I/O websocket protocol puts a `FrameLink` into the connection scope under
`scope["extensions"]["hubbub.frames"]`.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Opcode


class FrameLink:
    """What the application can see of and do on the raw websocket."""

    __slots__ = ("_protocol", "close_frame_code", "got_close_frame", "last_frame_at", "pings")

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol
        self.last_frame_at = protocol.loop.time()
        self.got_close_frame = False
        self.close_frame_code: int | None = None
        self.pings = 0

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

    @property
    def write_buffer_size(self) -> int:
        transport = self._protocol.transport
        return transport.get_write_buffer_size() if transport is not None else 0


class HubbubWebSocketProtocol(WebSocketsSansIOProtocol):
    link: FrameLink | None = None

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

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if getattr(self, "scope", None) is not None and self.handshake_complete is False:
            self.link = FrameLink(self)
            extensions: dict[str, Any] = self.scope["extensions"]
            extensions["hubbub.frames"] = self.link
