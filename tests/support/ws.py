"""A websocket client with nothing hidden: `RawWS`, written against the RFC 6455 framing (no
library), because the tests need to see and control what libraries hide — every Ping frame and
when it came, whether a Pong goes back, unsolicited Pongs, oversized or non-JSON frames, and a TCP
connection that vanishes without a close frame. Every read has a deadline."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from tests.support.rest import Account, Rest

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WSClosed(Exception):
    """The server closed the websocket (`code` from its close frame) or the TCP connection."""

    def __init__(self, code: int | None, reason: str = "", tcp_only: bool = False) -> None:
        what = "TCP connection closed without a close frame" if tcp_only else f"close {code}"
        super().__init__(f"{what} {reason}".strip())
        self.code = code
        self.reason = reason
        self.tcp_only = tcp_only


class HandshakeRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"websocket upgrade refused with HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class RawWS:
    """One client websocket over a plain blocking socket."""

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock = sock
        self._buf = bytearray(buffered)
        self.answer_pings = True
        self.pings: list[float] = []  # monotonic arrival time of each server Ping frame
        self.last_sent = time.monotonic()
        self.closed: WSClosed | None = None
        self.frames_after_open = 0

    @classmethod
    def connect(
        cls,
        port: int,
        *,
        token: str | None = None,
        query: dict[str, str] | None = None,
        path: str = "/api/v4/websocket",
        rcvbuf: int | None = None,
        timeout: float = 5.0,
        host: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
    ) -> RawWS:
        """`headers`: more request headers for the upgrade (a browser's `Cookie`, `Origin`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Set before connect so the advertised window is small from the first segment.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            key = base64.b64encode(os.urandom(16)).decode()
            target = path + ("?" + urllib.parse.urlencode(query) if query else "")
            lines = [
                f"GET {target} HTTP/1.1",
                f"Host: {host}:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                "User-Agent: hubbub-realtime-tests",
            ]
            if token:
                lines.append(f"Authorization: Bearer {token}")
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            raw = b""
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in raw:
                if time.monotonic() > deadline:
                    raise TimeoutError("no websocket handshake answer")
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed during the handshake: {raw!r}")
                raw += chunk
            head, _, rest = raw.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                body = rest
                with contextlib.suppress(OSError):
                    sock.settimeout(1)
                    while chunk := sock.recv(65536):
                        body += chunk
                raise HandshakeRefused(status, body.decode(errors="replace"))
        except BaseException:
            sock.close()
            raise
        return cls(sock, rest)

    # Sending

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = (
            bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if n < 4096
            else _mask(payload, mask)
        )
        self.sock.sendall(head + mask + masked)
        self.last_sent = time.monotonic()

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def send_json(self, obj: Any) -> None:
        self.send_text(json.dumps(obj))

    def send_pong(self, payload: bytes = b"") -> None:
        self.send_frame(OP_PONG, payload)

    def send_close(self, code: int = 1000) -> None:
        self.send_frame(OP_CLOSE, struct.pack("!H", code))

    # Receiving

    def _fill(self, need: int, deadline: float) -> bool:
        while len(self._buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = WSClosed(None, tcp_only=True)
                raise self.closed
            self._buf += chunk
        return True

    def recv_frame(self, timeout: float) -> tuple[int, bytes] | None:
        """The next frame as (opcode, payload), or None when `timeout` passes first."""
        if self.closed is not None:
            raise self.closed
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            return None
        b0, b1 = self._buf[0], self._buf[1]
        n = b1 & 0x7F
        offset = 2
        if n == 126:
            if not self._fill(4, deadline):
                return None
            n = struct.unpack("!H", self._buf[2:4])[0]
            offset = 4
        elif n == 127:
            if not self._fill(10, deadline):
                return None
            n = struct.unpack("!Q", self._buf[2:10])[0]
            offset = 10
        assert not b1 & 0x80, "the server masked a frame"
        if not self._fill(offset + n, deadline):
            return None
        payload = bytes(self._buf[offset : offset + n])
        del self._buf[: offset + n]
        return b0 & 0x0F, payload

    def recv_message(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The next JSON text message, handling control frames; None when `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                return None
            opcode, payload = frame
            if opcode == OP_PING:
                self.pings.append(time.monotonic())
                if self.answer_pings:
                    self.send_pong(payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.closed = WSClosed(code, payload[2:].decode(errors="replace"))
                raise self.closed
            assert opcode == OP_TEXT, f"unexpected frame opcode {opcode}"
            self.frames_after_open += 1
            message: dict[str, Any] = json.loads(payload)
            return message

    def expect(self, timeout: float = 5.0, what: str = "a message") -> dict[str, Any]:
        message = self.recv_message(timeout)
        if message is None:
            raise TimeoutError(f"no websocket message within {timeout}s (waiting for {what})")
        return message

    def wait_event(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 5.0,
        what: str = "an event",
        seen: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Reads until a message matches; the ones read on the way go to `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            message = self.recv_message(max(0.0, left))
            if message is None:
                raise TimeoutError(f"no {what} within {timeout}s; saw {seen}")
            if seen is not None:
                seen.append(message)
            if predicate(message):
                return message

    def wait_closed(self, timeout: float) -> WSClosed:
        """Reads (answering nothing new) until the server closes; returns how it closed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self.recv_message(max(0.0, deadline - time.monotonic()))
            except WSClosed as closed:
                return closed
            if frame is None and time.monotonic() >= deadline:
                raise TimeoutError(f"the server did not close the websocket within {timeout}s")

    def request(self, seq: int, action: str, data: Any = None, timeout: float = 5.0) -> dict:
        """Sends an action and returns its reply (events read meanwhile are discarded)."""
        frame: dict[str, Any] = {"seq": seq, "action": action}
        if data is not None:
            frame["data"] = data
        self.send_json(frame)
        return self.wait_event(lambda m: m.get("seq_reply") == seq, timeout, f"reply to {seq}")

    # Ending

    def vanish(self) -> None:
        """Drops the TCP connection without a close frame (a FIN, as a dying proxy would)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _mask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def hello_of(ws: RawWS, timeout: float = 5.0) -> dict[str, Any]:
    """Reads the first event and checks it is a fresh hello."""
    first = ws.expect(timeout, "hello")
    assert first.get("event") == "hello", f"first frame is not hello: {first}"
    assert first.get("seq") == 0, first
    return first


def post_id_of(message: dict[str, Any]) -> str | None:
    if message.get("event") != "posted":
        return None
    return str(json.loads(message["data"]["post"])["id"])


def read_until_post(
    ws: RawWS, post_id: str, timeout: float = 5.0, seen: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Reads until the `posted` event of `post_id`; returns it (the rest go to `seen`)."""
    return ws.wait_event(lambda m: post_id_of(m) == post_id, timeout, f"posted {post_id}", seen)


def sync(ws: RawWS, rest: Rest, author: Account, channel_id: str) -> int:
    """Posts a marker and reads up to it; returns its seq, so the next expected seq is one more
    and nothing sent before it is still unread."""
    marker = rest.post(author, channel_id, "sync marker")
    return int(read_until_post(ws, marker["id"])["seq"])
