"""What hubbub/realtime/transport.py takes from uvicorn's and websockets' private code is there.

`HubbubWebSocketProtocol` subclasses uvicorn's sans-I/O websocket protocol, replaces two of its
per-connection objects with lighter stand-ins, overrides five of its methods and reaches into
websockets' `ServerProtocol`. None of that is public API, so pyproject.toml bounds both packages
and these tests name the installed versions and the missing piece when an upgrade moves one.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import re
import struct
from typing import Any

import pytest
import uvicorn
import websockets

from tests.support.wait import wait_until_async

UVICORN = f"uvicorn {uvicorn.__version__}"
WEBSOCKETS = f"websockets {websockets.__version__}"
RELIES = "that hubbub/realtime/transport.py relies on"
BASE_MODULE = "uvicorn.protocols.websockets.websockets_sansio_impl"
BASE_NAME = "WebSocketsSansIOProtocol"

# uvicorn's methods the subclass overrides (and calls through super()), with their parameters.
OVERRIDDEN = {
    "send": ["message"],
    "data_received": ["data"],
    "handle_close": ["event"],
    "connection_lost": ["exc"],
    "handle_connect": ["event"],
}
# What uvicorn's __init__ sets and transport.py reads or replaces.
INIT_ATTRIBUTES = ["transport", "loop", "close_sent", "conn", "queue", "writable"]
INIT_ATTRIBUTES += ["handshake_complete"]
# What uvicorn's handle_connect sets and transport.py reads or drops.
CONNECT_ATTRIBUTES = ["scope", "request", "response"]
# What transport.py uses of websockets' ServerProtocol (uvicorn's `conn`).
CONN_ATTRIBUTES = ["close_sent", "close_rcvd", "reader", "parser", "parser_exc"]
CONN_METHODS = ["send_ping", "send_close", "data_to_send"]
READER_ATTRIBUTES = ["buffer", "eof"]


def _base_class() -> type:
    try:
        module = importlib.import_module(BASE_MODULE)
    except ImportError as exc:
        pytest.fail(f"{UVICORN}: no module {BASE_MODULE} {RELIES} ({exc})")
    base = getattr(module, BASE_NAME, None)
    if base is None:
        pytest.fail(f"{UVICORN}: {BASE_MODULE} has no class {BASE_NAME} {RELIES}")
    return base


def _missing(owner: str, version: str, name: str) -> str:
    return f"{version}: {owner} has no attribute {name!r} {RELIES}"


def _config(app: Any) -> uvicorn.Config:
    from hubbub.realtime.transport import HubbubWebSocketProtocol

    # As hubbub.server configures it.
    config = uvicorn.Config(
        app,
        log_config=None,
        ws=HubbubWebSocketProtocol,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        ws_per_message_deflate=False,
    )
    config.load()
    return config


async def _ignore(scope: Any, receive: Any, send: Any) -> None:
    return None


def test_uvicorn_base_class_and_the_overridden_methods_exist() -> None:
    base = _base_class()
    for name, params in OVERRIDDEN.items():
        method = getattr(base, name, None)
        assert callable(method), _missing(BASE_NAME, UVICORN, name)
        got = [p for p in inspect.signature(method).parameters if p != "self"]
        assert got == params, (
            f"{UVICORN}: {BASE_NAME}.{name} takes {got}, not the {params} {RELIES}"
        )
    transport = importlib.import_module("hubbub.realtime.transport")
    assert issubclass(transport.HubbubWebSocketProtocol, base)


async def test_uvicorn_sets_the_attributes_transport_py_reads() -> None:
    from uvicorn.server import ServerState

    base = _base_class()
    protocol = base(_config(_ignore), ServerState(), {}, asyncio.get_running_loop())
    for name in INIT_ATTRIBUTES:
        assert hasattr(protocol, name), _missing(BASE_NAME, UVICORN, name)
    conn = protocol.conn
    for name in CONN_ATTRIBUTES + CONN_METHODS:
        assert hasattr(conn, name), _missing(type(conn).__name__, WEBSOCKETS, name)
    for name in READER_ATTRIBUTES:
        assert hasattr(conn.reader, name), _missing(type(conn.reader).__name__, WEBSOCKETS, name)


def test_websockets_protocol_parse_and_close_opcode_exist() -> None:
    from websockets.frames import Opcode
    from websockets.protocol import Protocol

    assert inspect.isgeneratorfunction(getattr(Protocol, "parse", None)), _missing(
        "Protocol", WEBSOCKETS, "parse"
    )
    assert hasattr(Opcode, "CLOSE"), _missing("Opcode", WEBSOCKETS, "CLOSE")


@pytest.mark.parametrize(("attribute", "stand_in"), [("queue", "_Inbox"), ("writable", "_Flag")])
def test_the_stand_ins_offer_every_method_uvicorn_calls(attribute: str, stand_in: str) -> None:
    """transport.py replaces uvicorn's asyncio.Queue and asyncio.Event with smaller objects
    that have only the methods uvicorn calls today; a new call would break every connection."""
    transport = importlib.import_module("hubbub.realtime.transport")
    source = inspect.getsource(_base_class())
    used = set(re.findall(rf"self\.{attribute}\.(\w+)", source))
    assert used, f"{UVICORN}: {BASE_NAME} no longer uses self.{attribute} {RELIES}"
    offered = getattr(transport, stand_in)
    for name in sorted(used):
        assert callable(getattr(offered, name, None)), (
            f"{UVICORN}: {BASE_NAME} calls self.{attribute}.{name}(), which transport.py's "
            f"{stand_in} does not have"
        )


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8065)}.get(
            name, default
        )


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


async def test_a_handshake_through_the_subclass_exposes_the_frame_link() -> None:
    """The whole path once, in memory: upgrade, accept, the link in the scope, a frame in, a
    frame written by the link, a close frame noticed."""
    from uvicorn.server import ServerState

    from hubbub.realtime.transport import FrameLink, HubbubWebSocketProtocol

    links: list[FrameLink] = []
    received: list[Any] = []
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        links.append(scope["extensions"]["hubbub.frames"])
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        received.append(await receive())
        received.append(await receive())
        done.set()

    protocol = HubbubWebSocketProtocol(_config(app), ServerState(), {}, asyncio.get_running_loop())
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(
        b"GET /api/v4/websocket HTTP/1.1\r\nHost: 127.0.0.1:8065\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await wait_until_async(lambda: b"\r\n\r\n" in transport.written, 5, "the 101 response")
    assert transport.written.startswith(b"HTTP/1.1 101"), bytes(transport.written)
    assert links and links[0] is protocol.link, f"{UVICORN}: no FrameLink in the scope"
    assert protocol.request is None, f"{UVICORN}: the handshake request was not dropped"
    transport.written.clear()

    protocol.data_received(_masked(0x1, b'{"seq": 1}'))
    links[0].write_text(b"{}")
    assert bytes(transport.written) == b"\x81\x02{}"
    protocol.data_received(_masked(0x8, struct.pack("!H", 1000)))
    await asyncio.wait_for(done.wait(), 5)
    assert received[0] == {"type": "websocket.receive", "text": '{"seq": 1}'}
    assert received[1]["type"] == "websocket.disconnect"
    assert links[0].got_close_frame and links[0].close_frame_code == 1000
    protocol.connection_lost(None)
    assert links[0].lost
