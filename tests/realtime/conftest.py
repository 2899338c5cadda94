"""The realtime tier: real `hubbub serve` processes, spoken to over real sockets.

`RawWS` is a deliberately small websocket client written against the RFC 6455 framing (no
library): the tests need to see and control what libraries hide — every Ping frame and when it
came, whether a Pong goes back, unsolicited Pongs, oversized or non-JSON frames, and a TCP
connection that vanishes without a close frame. `Rest` is a synchronous httpx client for setting
up users, teams, channels and posts. `Node` wraps a server process with its metrics endpoint and
its close log. Every wait has a deadline; nothing sleeps to synchronize.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import itertools
import json
import os
import socket
import struct
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.server import ServerProcess, start_server

PASSWORD = "password-123"
_names = itertools.count()

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# A websocket client with nothing hidden


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
    ) -> RawWS:
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


# REST set-up over plain HTTP


@dataclass
class Account:
    id: str
    username: str
    token: str


class Rest:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url + "/api/v4", timeout=10)

    def call(
        self, method: str, path: str, token: str | None = None, json: Any = None, expect: int = 200
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = self.http.request(method, path, json=json, headers=headers)
        assert resp.status_code == expect, (
            f"{method} /api/v4{path}: expected {expect}, got {resp.status_code} {resp.text[:500]}"
        )
        return resp.json()

    def user(self, admin: Account | None, prefix: str = "user") -> Account:
        name = f"{prefix}{next(_names)}x{os.getpid()}"
        data = self.call(
            "POST",
            "/users",
            token=admin.token if admin else None,
            json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
            expect=201,
        )
        resp = self.http.post("/users/login", json={"login_id": name, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return Account(id=data["id"], username=name, token=resp.headers["Token"])

    def team(self, owner: Account) -> dict[str, Any]:
        name = f"team{next(_names)}"
        return dict(
            self.call(
                "POST",
                "/teams",
                owner.token,
                {"name": name, "display_name": name.title(), "type": "O"},
                201,
            )
        )

    def join_team(self, owner: Account, team_id: str, user: Account) -> None:
        self.call(
            "POST",
            f"/teams/{team_id}/members",
            owner.token,
            {"team_id": team_id, "user_id": user.id},
            201,
        )

    def channel(self, owner: Account, team_id: str, type_: str = "O") -> dict[str, Any]:
        name = f"chan{next(_names)}"
        return dict(
            self.call(
                "POST",
                "/channels",
                owner.token,
                {"team_id": team_id, "name": name, "display_name": name.title(), "type": type_},
                201,
            )
        )

    def join_channel(self, owner: Account, channel_id: str, user: Account) -> None:
        self.call("POST", f"/channels/{channel_id}/members", owner.token, {"user_id": user.id}, 201)

    def post(self, author: Account, channel_id: str, message: str) -> dict[str, Any]:
        return dict(
            self.call(
                "POST", "/posts", author.token, {"channel_id": channel_id, "message": message}, 201
            )
        )

    def close(self) -> None:
        self.http.close()


@dataclass
class People:
    """The first user (a system admin) and three ordinary users."""

    admin: Account
    alice: Account
    bob: Account
    carol: Account


@dataclass
class Org(People):
    """People in one team; `public` has all four, `private` only admin, alice and bob (carol is
    a team member but not in it)."""

    team: dict[str, Any]
    public: dict[str, Any]
    private: dict[str, Any]


def make_people(rest: Rest) -> People:
    admin = rest.user(None, "admin")
    alice, bob, carol = (rest.user(admin, n) for n in ("alice", "bob", "carol"))
    return People(admin, alice, bob, carol)


def make_org(rest: Rest, people: People | None = None) -> Org:
    p = people or make_people(rest)
    team = rest.team(p.admin)
    for member in (p.alice, p.bob, p.carol):
        rest.join_team(p.admin, team["id"], member)
    public = rest.channel(p.admin, team["id"], "O")
    private = rest.channel(p.admin, team["id"], "P")
    for member in (p.alice, p.bob, p.carol):
        rest.join_channel(p.admin, public["id"], member)
    for member in (p.alice, p.bob):
        rest.join_channel(p.admin, private["id"], member)
    return Org(p.admin, p.alice, p.bob, p.carol, team, public, private)


# A server process with its metrics and close log


@dataclass
class Node:
    server: ServerProcess
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample (0 when the series does not exist yet)."""
        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def disconnects(self, reason: str) -> float:
        return self.metric("hubbub_websocket_disconnects_total", reason=reason)

    def close_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.server.log().splitlines():
            if '"websocket closed"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("msg") == "websocket closed":
                    lines.append(entry)
        return lines

    def close_line(self, connection_id: str) -> dict[str, Any] | None:
        for entry in self.close_lines():
            if entry.get("connection_id") == connection_id:
                return entry
        return None

    def wait_close_line(self, connection_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.close_line(connection_id)
            if entry is not None:
                return entry
            time.sleep(0.05)
        raise TimeoutError(
            f"no 'websocket closed' log line for connection {connection_id!r} within {timeout}s; "
            f"close lines: {self.close_lines()}"
        )

    def wait_close_reason(
        self, reason: str, before: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Waits for more than `before` close lines with `reason`; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.close_lines() if e.get("reason") == reason]
            if len(found) > before:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no new close line with reason {reason!r} within {timeout}s; "
                    f"close lines: {self.close_lines()}"
                )
            time.sleep(0.05)

    def connect(self, account: Account | None = None, **kw: Any) -> RawWS:
        return RawWS.connect(self.port, token=account.token if account else None, **kw)


def start_node(workdir: Path, settings: dict[str, str] | None = None) -> Node:
    """A `hubbub serve` on SQLite in `workdir` with metrics, tokens and bots enabled."""
    metrics_port = free_port()
    env = {
        "MM_SQLSETTINGS_DATASOURCE": str(workdir / "hubbub.db"),
        "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
        "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
        "MM_METRICSSETTINGS_ENABLE": "true",
        "MM_METRICSSETTINGS_LISTENADDRESS": f"127.0.0.1:{metrics_port}",
        "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
        "MM_LOGSETTINGS_CONSOLEJSON": "true",
        **(settings or {}),
    }
    with warnings.catch_warnings():
        # start_server drops its handle on the log file (the child keeps its own descriptor),
        # so a ResourceWarning fires when the handle is collected: on return, or later when
        # a retried health check left a traceback cycle holding start_server's frame.
        warnings.simplefilter("ignore", ResourceWarning)
        server = start_server(workdir, env)
        gc.collect()
    return Node(server=server, metrics_port=metrics_port, env=env)


def keepalive_settings(ping: int, pong: int) -> dict[str, str]:
    return {
        "MM_SERVICESETTINGS_WEBSOCKETPINGINTERVALSECONDS": str(ping),
        "MM_SERVICESETTINGS_WEBSOCKETPONGTIMEOUTSECONDS": str(pong),
    }


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    """MM_* settings of the module's server; a module overrides this fixture to change them."""
    return keepalive_settings(1, 3)


@pytest.fixture(scope="module")
def live_node(
    tmp_path_factory: pytest.TempPathFactory, live_node_settings: dict[str, str]
) -> Iterator[Node]:
    """One server per test module (by default pinging every 1 s, giving up after 3 s). Not
    called `node`: the root conftest's `node` is an in-process Hubbub."""
    started = start_node(tmp_path_factory.mktemp("node"), live_node_settings)
    try:
        yield started
    finally:
        started.server.stop()


@pytest.fixture(scope="module")
def rest(live_node: Node) -> Iterator[Rest]:
    client = Rest(live_node.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def people(rest: Rest) -> People:
    return make_people(rest)


@pytest.fixture(scope="module")
def org(rest: Rest, people: People) -> Org:
    return make_org(rest, people)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `check` until true; fails naming `what` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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
