"""uvicorn's HTTP protocol, writing an answer's head and body in one system call.

uvicorn writes a response's status line and headers when the app sends `http.response.start`,
and its body when the app sends `http.response.body`: two `send()` calls and, with
`TCP_NODELAY`, two packets for every answer, though the body follows at once. On loopback, and
behind nginx, each send costs the kernel's whole TCP path (the receiving side's included): the
two writes were some 15 % of the server's CPU for a small read (docs/design/capacity.md, "The
fixed cost of a request").

`CoalescingHttpToolsProtocol` gives each request's cycle a transport that holds a written head
(`HTTP/...` up to its blank line) and sends it together with the next write, the body. A head
is never held past the current turn of the event loop: a flush is scheduled with it, and the
end of the response, a close and anything but a plain write send it first. The bytes on the
wire are the same, in the same order; a websocket upgrade gets the real transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeldHeadTransport:
    """A transport that holds a response head until the next write or the loop's next turn.
    Everything but writes and closing goes to the real transport as it is."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif isinstance(data, bytes) and data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.flush()
        self._transport.writelines(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def close(self) -> None:
        self.flush()  # close() sends what was written before it
        self._transport.close()

    def abort(self) -> None:
        self._held = None  # abort() drops what was not sent
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose request cycles write through `HeldHeadTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._raw_transport = transport
        held = HeldHeadTransport(transport, self.loop)
        # uvicorn gives `self.transport` to every request's cycle, which writes the answer.
        self.transport = cast(asyncio.Transport, held)

    def on_response_complete(self) -> None:
        # The body was written (or, for HEAD, will not be): nothing waits behind the head.
        cast(HeldHeadTransport, self.transport).flush()
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        cast(HeldHeadTransport, self.transport).flush()
        self.transport = self._raw_transport  # the websocket protocol writes on its own
        super().handle_websocket_upgrade()
