"""Keep-alive and the classified close reasons, against a real server with short intervals.

The module's server pings every 1 s and gives up after 3 s without any frame. Each close test
checks both outputs of the close accounting: the one JSON log line with its `reason` and the
`hubbub_websocket_disconnects_total{reason}` counter.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.node import Node, keepalive_settings, start_node
from tests.support.rest import PASSWORD, Account, People, Rest, make_people
from tests.support.wait import wait_until
from tests.support.ws import OP_TEXT, RawWS, hello_of

PING = 1.0
PONG_TIMEOUT = 3.0


def _closed_for(live_node: Node, ws_hello: dict, reason: str, before: float) -> dict:
    """The close line of this connection has `reason`, and the counter for it went up."""
    connection_id = ws_hello["data"]["connection_id"]
    line = live_node.wait_close_line(connection_id)
    assert line["reason"] == reason, line
    assert live_node.disconnects(reason) > before, f"{reason} counter did not go up"
    return line


def test_server_pings_about_every_interval(live_node: Node, people: People) -> None:
    ws = live_node.connect(people.alice)
    try:
        hello_of(ws)
        deadline = time.monotonic() + 6 * PING
        while len(ws.pings) < 4:
            assert time.monotonic() < deadline, f"only {len(ws.pings)} pings in {6 * PING}s"
            ws.recv_message(0.2)
        gaps = [b - a for a, b in zip(ws.pings, ws.pings[1:], strict=False)]
        assert all(0.5 * PING <= g <= 1.8 * PING for g in gaps), gaps
        # Answered pings keep it open well past the pong timeout.
        assert ws.request(2, "ping")["data"]["text"] == "pong"
    finally:
        ws.close()


def test_unsolicited_pongs_keep_the_connection_alive(live_node: Node, people: People) -> None:
    """mattermostdriver never answers late and sends bare Pongs: that must count as alive."""
    ws = live_node.connect(people.alice)
    try:
        connection_id = hello_of(ws)["data"]["connection_id"]
        ws.answer_pings = False
        started = time.monotonic()
        while time.monotonic() - started < 1.5 * PONG_TIMEOUT:
            ws.send_pong(b"unsolicited")
            ws.recv_message(0.5)  # raises WSClosed if the server gave up on us
        assert len(ws.pings) >= 3, "the server stopped pinging"
        assert ws.request(7, "ping")["data"]["text"] == "pong"
        assert live_node.close_line(connection_id) is None
    finally:
        ws.close()


def test_silent_peer_is_closed_after_the_pong_timeout(live_node: Node, people: People) -> None:
    before = live_node.disconnects("read_timeout")
    ws = live_node.connect(people.alice)
    try:
        hello = hello_of(ws)
        ws.answer_pings = False
        last_heard = ws.last_sent
        closed = ws.wait_closed(PONG_TIMEOUT + 3)
        waited = time.monotonic() - last_heard
        assert waited >= PONG_TIMEOUT - 0.3, f"closed after {waited:.2f}s, before the timeout"
        assert ws.pings, "no ping was sent before giving up"
        line = _closed_for(live_node, hello, "read_timeout", before)
        assert line["since_last_frame_seconds"] >= PONG_TIMEOUT - 0.3, line
        assert closed.tcp_only or closed.code is not None
    finally:
        ws.close()


def test_client_close(live_node: Node, people: People) -> None:
    before = live_node.disconnects("client_close")
    ws = live_node.connect(people.alice)
    try:
        hello = hello_of(ws)
        ws.send_close(1000)
        closed = ws.wait_closed(5)
        assert closed.code == 1000, closed
        line = _closed_for(live_node, hello, "client_close", before)
        assert line["close_code"] == 1000
    finally:
        ws.close()


def test_bad_token_in_challenge_closes_with_auth_failed(live_node: Node) -> None:
    before = live_node.disconnects("auth_failed")
    lines_before = sum(1 for e in live_node.close_lines() if e["reason"] == "auth_failed")
    ws = live_node.connect()
    try:
        ws.send_json({"seq": 1, "action": "authentication_challenge", "data": {"token": "x" * 26}})
        closed = ws.wait_closed(5)
        assert not closed.tcp_only and closed.code is not None, closed
        assert ws.frames_after_open == 0, "no hello or reply for a bad token"
        live_node.wait_close_reason("auth_failed", lines_before)
        assert live_node.disconnects("auth_failed") > before
    finally:
        ws.close()


def test_no_authentication_within_5s_closes_with_auth_failed(live_node: Node) -> None:
    before = live_node.disconnects("auth_failed")
    lines_before = sum(1 for e in live_node.close_lines() if e["reason"] == "auth_failed")
    ws = live_node.connect()
    try:
        opened = time.monotonic()
        closed = ws.wait_closed(9)
        waited = time.monotonic() - opened
        assert 4.5 <= waited <= 8, f"closed after {waited:.2f}s, expected about 5s"
        assert closed.code is not None or closed.tcp_only
        live_node.wait_close_reason("auth_failed", lines_before)
        assert live_node.disconnects("auth_failed") > before
    finally:
        ws.close()


def test_non_json_frame_is_a_protocol_error(live_node: Node, people: People) -> None:
    before = live_node.disconnects("protocol_error")
    ws = live_node.connect(people.alice)
    try:
        hello = hello_of(ws)
        ws.send_text("this is not json {")
        closed = ws.wait_closed(5)
        assert closed.code == 1002, closed
        _closed_for(live_node, hello, "protocol_error", before)
    finally:
        ws.close()


def test_oversized_frame_is_a_protocol_error(live_node: Node, people: People) -> None:
    before = live_node.disconnects("protocol_error")
    ws = live_node.connect(people.alice)
    try:
        hello = hello_of(ws)
        big = json.dumps({"seq": 2, "action": "ping", "data": {"x": "a" * (1024 * 1024)}})
        with contextlib.suppress(OSError):  # it may close before reading the whole frame
            ws.send_frame(OP_TEXT, big.encode())
        closed = ws.wait_closed(5)
        assert closed.tcp_only or closed.code == 1009, closed
        _closed_for(live_node, hello, "protocol_error", before)
    finally:
        ws.close()


def test_silent_then_vanished_peer_is_proxy_idle_suspected(live_node: Node, people: People) -> None:
    """A peer that stopped answering for longer than the ping interval, then lost its TCP
    connection without a close frame, is what an idle-killing proxy looks like."""
    before = live_node.disconnects("proxy_idle_suspected")
    ws = live_node.connect(people.alice)
    hello = hello_of(ws)
    ws.answer_pings = False
    deadline = time.monotonic() + PONG_TIMEOUT
    while not ws.pings or time.monotonic() - ws.last_sent < PING + 0.3:
        assert time.monotonic() < deadline, "no ping arrived while the client was silent"
        ws.recv_message(0.05)
    assert time.monotonic() - ws.last_sent < PONG_TIMEOUT - 0.5, "too slow to beat the timeout"
    ws.vanish()
    line = _closed_for(live_node, hello, "proxy_idle_suspected", before)
    assert line["since_last_frame_seconds"] >= PING, line


def test_active_peer_that_vanishes_is_not_blamed_on_a_proxy(
    live_node: Node, people: People
) -> None:
    """The control for the test above: the same vanishing right after a frame is client_close."""
    before = live_node.disconnects("client_close")
    ws = live_node.connect(people.alice)
    hello = hello_of(ws)
    ws.request(2, "ping")
    ws.vanish()
    line = _closed_for(live_node, hello, "client_close", before)
    assert line["since_last_frame_seconds"] < PING, line


# Drain: a server of its own, since SIGTERM ends it


def _ping_status(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url + "/api/v4/system/ping", timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError as exc:
        return type(exc).__name__


def _start_slow_login(port: int, account: Account) -> tuple[socket.socket, bytes]:
    """An HTTP request left in flight: headers and half of the body sent, the rest held back."""
    body = json.dumps({"login_id": account.username, "password": PASSWORD}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /api/v4/users/login HTTP/1.1\r\nHost: hubbub\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    return sock, body[10:]


def test_sigterm_drains_with_1012_and_not_ready(tmp_path: Path) -> None:
    """SIGTERM: not-ready health check, websockets closed with 1012, in-flight requests
    finished, exit within GracefulShutdownTimeoutSeconds."""
    grace = 5
    live_node = start_node(
        tmp_path,
        {
            **keepalive_settings(25, 60),
            "MM_SERVICESETTINGS_GRACEFULSHUTDOWNTIMEOUTSECONDS": str(grace),
        },
    )
    clients: list[RawWS] = []
    statuses: list[tuple[float, int | str]] = []
    stop_polling = threading.Event()
    in_flight: socket.socket | None = None
    try:
        rest = Rest(live_node.url)
        people = make_people(rest)
        rest.close()
        ids = []
        for account in (people.alice, people.bob):
            ws = live_node.connect(account)
            ids.append(hello_of(ws)["data"]["connection_id"])
            clients.append(ws)
        assert live_node.disconnects("server_drain") == 0
        in_flight, rest_of_body = _start_slow_login(live_node.port, people.carol)

        def poll() -> None:
            while not stop_polling.is_set():
                statuses.append((time.monotonic(), _ping_status(live_node.url)))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        wait_until(lambda: any(s == 200 for _, s in statuses), 5, "the health check to answer 200")
        signalled = time.monotonic()
        live_node.server.proc.send_signal(signal.SIGTERM)
        codes = [ws.wait_closed(grace).code for ws in clients]
        assert codes == [1012, 1012], codes
        reasons = [live_node.wait_close_line(i)["reason"] for i in ids]
        assert reasons == ["server_drain", "server_drain"], (
            f"closed as {reasons}: a 1012 not sent by the drain (uvicorn's own shutdown?)"
        )
        # The login is still in flight, so the process is still finishing and its metrics
        # endpoint is up.
        wait_until(
            lambda: live_node.disconnects("server_drain") >= 2, 3, "server_drain counted twice"
        )
        for ws in clients:
            ws.send_close(1000)
        in_flight.sendall(rest_of_body)
        answer = in_flight.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), f"in-flight login was not finished: {answer!r}"
        live_node.server.proc.wait(grace + 2)
        exited_after = time.monotonic() - signalled
        stop_polling.set()
        poller.join(5)
        assert exited_after <= grace + 1, f"exited {exited_after:.1f}s after SIGTERM"
        after = [s for t, s in statuses if t > signalled]
        assert any(isinstance(s, int) and s != 200 for s in after), (
            f"/system/ping never answered non-200 while draining; after SIGTERM it gave {after}"
        )
        lines = [e for e in live_node.close_lines() if e["reason"] == "server_drain"]
        assert len(lines) == 2, live_node.close_lines()
        assert all(e["close_code"] == 1012 for e in lines), lines
    finally:
        stop_polling.set()
        if in_flight is not None:
            in_flight.close()
        for ws in clients:
            ws.close()
        live_node.server.stop()


def test_going_away_close_is_client_close(live_node: Node, people: People) -> None:
    before = live_node.disconnects("client_close")
    ws = live_node.connect(people.bob)
    try:
        hello = hello_of(ws)
        ws.send_close(1001)  # a browser tab going away
        assert ws.wait_closed(5).code == 1001
        line = _closed_for(live_node, hello, "client_close", before)
        assert line["close_code"] == 1001
    finally:
        ws.close()
