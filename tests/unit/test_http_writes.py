"""An answer's head and body leave in one write, byte for byte what uvicorn writes in two; a
head is never held past the loop's turn, a close or the end of the answer."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from hubbub.http_writes import CoalescingHttpToolsProtocol, HeldHeadTransport


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.writes.append(b"<close>")
        self.closed = True

    def abort(self) -> None:
        self.writes.append(b"<abort>")
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8065)}.get(
            name, default
        )

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


async def _serve(app: Any, request: bytes) -> FakeTransport:
    """Feeds `request` to the protocol on a fake transport; returns it once the answer ended."""
    config = Config(app, http=CoalescingHttpToolsProtocol, lifespan="off", log_config=None)
    config.load()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    while protocol.cycle is None or not protocol.cycle.response_complete:
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # the turn after: a scheduled flush has run
    for task in list(protocol.tasks):
        await task
    return transport


def _app(body: bytes, pause: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if pause:  # as a streamed answer does: the body comes later
            for _ in range(3):
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": body})

    return app


GET = b"GET /x HTTP/1.1\r\nhost: node\r\n\r\n"


async def test_head_and_body_leave_in_one_write() -> None:
    transport = await _serve(_app(b'{"id":"me"}'), GET)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
    assert body == b'{"id":"me"}'


async def test_a_head_without_a_body_leaves_when_the_answer_ends() -> None:
    transport = await _serve(_app(b"abc"), b"HEAD /x HTTP/1.1\r\nhost: node\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")


async def test_a_head_is_not_held_while_the_app_waits_before_the_body() -> None:
    config = Config(_app(b"late", pause=True), lifespan="off", log_config=None)
    config.load()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(GET)
    for _ in range(3):
        await asyncio.sleep(0)
    # The app paused after the head: it was sent on the loop's next turn, before the body.
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200")
    while not protocol.cycle.response_complete:
        await asyncio.sleep(0)
    assert transport.writes[1:] == [b"late"]


async def test_close_sends_a_held_head_first_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    raw = FakeTransport()
    held = HeldHeadTransport(raw, loop)
    held.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert raw.writes == [] and held.get_write_buffer_size() == len(
        b"HTTP/1.1 204 No Content\r\n\r\n"
    )
    held.close()
    assert raw.writes == [b"HTTP/1.1 204 No Content\r\n\r\n", b"<close>"]
    raw2 = FakeTransport()
    held2 = HeldHeadTransport(raw2, loop)
    held2.write(b"HTTP/1.1 200 OK\r\n\r\n")
    held2.abort()
    await asyncio.sleep(0)
    assert raw2.writes == [b"<abort>"]


async def test_other_writes_pass_straight_through() -> None:
    raw = FakeTransport()
    held = HeldHeadTransport(raw, asyncio.get_running_loop())
    held.write(b"chunk")
    held.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    held.write(b"more")
    assert raw.writes == [b"chunk", b"HTTP/1.1 100 Continue\r\n\r\nmore"]
