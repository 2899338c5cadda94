"""The doctor's probes: plain HTTP to the proxy and to each node, and a raw websocket (RFC 6455
framing by hand, as a library would hide what matters here: the exact handshake answer, every
Ping frame, and a TCP connection closed without a close frame).

Probes only observe; `hubbub.doctor.checks` judges.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import ssl
import struct
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: bool
    base: str  # scheme://host[:port][/prefix], no trailing slash

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        return cls(parts.hostname, port, tls, base)

    @property
    def prefix(self) -> str:
        return urllib.parse.urlsplit(self.base).path


@dataclass
class HTTPAnswer:
    status: int  # 0: no answer
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    error: str = ""
    elapsed_ms: float = 0.0


def get_json(base: str, path: str, token: str | None = None, timeout: float = 5.0) -> HTTPAnswer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    try:
        resp = httpx.get(base + path, headers=headers, timeout=timeout, verify=True)
    except httpx.HTTPError as exc:
        return HTTPAnswer(0, error=f"{type(exc).__name__}: {exc}")
    elapsed = (time.monotonic() - started) * 1000
    body: Any
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        body = resp.text[:500]
    return HTTPAnswer(resp.status_code, dict(resp.headers), body, elapsed_ms=round(elapsed, 1))


@dataclass
class Handshake:
    status: int  # 0: no HTTP answer at all
    reason: str
    headers: dict[str, str]
    body: str
    sock: socket.socket | None = None  # open when status is 101
    buffered: bytes = b""
    error: str = ""


def _connect(target: Target, timeout: float) -> socket.socket:
    raw = socket.create_connection((target.host, target.port), timeout=timeout)
    if not target.tls:
        return raw
    return ssl.create_default_context().wrap_socket(raw, server_hostname=target.host)


def websocket_handshake(
    target: Target, token: str | None, query: dict[str, str] | None = None, timeout: float = 5.0
) -> Handshake:
    """Asks for `/api/v4/websocket` as a browser would; keeps the socket open on 101."""
    try:
        sock = _connect(target, timeout)
    except OSError as exc:
        return Handshake(0, "", {}, "", error=f"cannot connect to {target.base}: {exc}")
    key = base64.b64encode(os.urandom(16)).decode()
    path = target.prefix + "/api/v4/websocket"
    if query:
        path += "?" + urllib.parse.urlencode(query)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: hubbub-doctor",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in raw:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer to the websocket handshake")
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    except OSError as exc:
        sock.close()
        return Handshake(0, "", {}, "", error=f"{type(exc).__name__}: {exc}")
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines_in = head.decode("latin-1").split("\r\n")
    status_line = lines_in[0].split(" ", 2) if lines_in and lines_in[0] else []
    if len(status_line) < 2 or not status_line[1].isdigit():
        sock.close()
        return Handshake(0, "", {}, "", error=f"not an HTTP answer: {raw[:200]!r}")
    headers = {}
    for line in lines_in[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line[1])
    reason = status_line[2] if len(status_line) > 2 else ""
    if status == 101:
        return Handshake(status, reason, headers, "", sock=sock, buffered=rest)
    body = rest
    with contextlib.suppress(OSError):
        sock.settimeout(1)
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    sock.close()
    return Handshake(status, reason, headers, body.decode(errors="replace"))


@dataclass
class IdleResult:
    frames: int = 0  # frames received (hello and anything after it)
    pings: int = 0  # server Ping frames: the server did not skip its pings
    cut_after: float | None = None  # idle seconds when the connection ended without a close
    close_code: int | None = None  # the server (or proxy) sent a close frame
    held_for: float = 0.0  # idle seconds at the end of the measurement
    error: str = ""


class _Frames:
    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock = sock
        self.buf = bytearray(buffered)

    def _fill(self, need: int, deadline: float) -> bool:
        """False when the peer closed the TCP connection; TimeoutError at the deadline."""
        while len(self.buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return False
            self.buf += chunk
        return True

    def next(self, deadline: float) -> tuple[int, bytes] | None:
        """The next frame (opcode, payload); None when TCP closed; TimeoutError at deadline."""
        if not self._fill(2, deadline):
            return None
        b1, b2 = self.buf[0], self.buf[1]
        length, offset = b2 & 0x7F, 2
        if length == 126:
            if not self._fill(4, deadline):
                return None
            length, offset = struct.unpack("!H", self.buf[2:4])[0], 4
        elif length == 127:
            if not self._fill(10, deadline):
                return None
            length, offset = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not self._fill(offset + length, deadline):
            return None
        payload = bytes(self.buf[offset : offset + length])
        del self.buf[: offset + length]
        return b1 & 0x0F, payload


def hold_idle(
    handshake: Handshake,
    idle_max: float,
    progress: Callable[[float], None] | None = None,
) -> IdleResult:
    """Keeps the websocket open, sending nothing, until it is cut or has been idle for
    `idle_max` seconds (counted from the last frame received)."""
    assert handshake.sock is not None
    frames = _Frames(handshake.sock, handshake.buffered)
    result = IdleResult()
    last = time.monotonic()
    next_report = last + 10
    try:
        while True:
            now = time.monotonic()
            if progress is not None and now >= next_report:
                progress(now - last)
                next_report = now + 10
            try:
                frame = frames.next(min(last + idle_max, now + 10))
            except TimeoutError:
                if time.monotonic() - last >= idle_max:
                    result.held_for = time.monotonic() - last
                    return result
                continue
            except OSError as exc:  # a reset counts as a cut
                result.cut_after = time.monotonic() - last
                result.error = f"{type(exc).__name__}: {exc}"
                return result
            if frame is None:
                result.cut_after = time.monotonic() - last
                return result
            opcode, payload = frame
            result.frames += 1
            if opcode == OP_PING:
                result.pings += 1
            if opcode == OP_CLOSE:
                result.close_code = (
                    struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                )
                result.held_for = time.monotonic() - last
                return result
            last = time.monotonic()
    finally:
        with contextlib.suppress(OSError):
            handshake.sock.close()


def wait_text(
    handshake: Handshake, contains: str, timeout: float, frames: _Frames | None = None
) -> tuple[float | None, _Frames]:
    """Reads text frames until one contains `contains`; its arrival (monotonic) or None."""
    assert handshake.sock is not None
    reader = frames or _Frames(handshake.sock, handshake.buffered)
    deadline = time.monotonic() + timeout
    while True:
        try:
            frame = reader.next(deadline)
        except (TimeoutError, OSError):
            return None, reader
        if frame is None:
            return None, reader
        opcode, payload = frame
        if opcode == OP_TEXT and contains.encode() in payload:
            return time.monotonic(), reader


def put_json(base: str, path: str, token: str, body: Any, timeout: float = 5.0) -> HTTPAnswer:
    started = time.monotonic()
    try:
        resp = httpx.put(
            base + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return HTTPAnswer(0, error=f"{type(exc).__name__}: {exc}")
    elapsed = (time.monotonic() - started) * 1000
    return HTTPAnswer(resp.status_code, dict(resp.headers), resp.text[:300], elapsed_ms=elapsed)
