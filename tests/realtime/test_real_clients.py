"""Real Mattermost client libraries against a real server, unchanged.

- `mattermostdriver` 7.3.2 (this venv): `Driver.init_websocket` gets `posted` for a REST post.
- `mmpy-bot` 2.2.1: a bot with a bot token answers "ping" with "pong", end to end. mmpy-bot pins
  `httpx<0.28`, which would downgrade the project's httpx, so it lives in its own venv
  (`.venv/mmpy-bot`, made by `make realtime-deps`) and the bot runs as a subprocess from there.
- `@mattermost/client` 11.9.0 `WebSocketClient` under Node (tests/realtime/live_node, `npm ci` by
  `make realtime-deps`): its pings are answered, its sequence stays contiguous, and after its
  TCP connection is cut by a proxy it resumes and gets every missed event, without firing its
  missed-message listener.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mattermostdriver import Driver

from tests.support.clients import (
    BOT_SCRIPT,
    MMPY_PYTHON,
    DriverSocket,
    NodeClient,
    bot_account,
)
from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest, status_of
from tests.support.tcpproxy import TCPProxy
from tests.support.wait import GiveUp, wait_until


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    # Pings every second as elsewhere, but a frozen connection must be taken over by the
    # client's resume, not closed first by the pong timeout.
    return keepalive_settings(1, 10)


# (a) mattermostdriver


def test_mattermostdriver_websocket_receives_posted(live_node: Node, rest: Rest, org: Org) -> None:
    driver = Driver(
        {
            "url": "127.0.0.1",
            "port": live_node.port,
            "scheme": "http",
            "basepath": "/api/v4",
            "token": org.alice.token,
            "timeout": 1,  # its loop wakes every second, so disconnect() takes effect quickly
            "keepalive": False,
        }
    )
    driver.login()
    with DriverSocket(driver) as socket:
        socket.wait(lambda m: m.get("event") == "hello", 10, "the driver's hello")
        post = rest.post(org.bob, org.public["id"], "for the driver")
        socket.wait_post(post["id"])
    hellos = [m for m in socket.seen if m.get("event") == "hello"]
    assert len(hellos) == 1, f"the driver reconnected: {len(hellos)} hellos"
    events = socket.events()
    assert [m["seq"] for m in events] == list(range(len(events)))


# (b) mmpy-bot


def test_mmpy_bot_answers_ping_with_pong(
    live_node: Node, rest: Rest, org: Org, tmp_path: Path
) -> None:
    if not MMPY_PYTHON.exists():
        pytest.fail(f"{MMPY_PYTHON} is missing: run `make realtime-deps` (mmpy-bot==2.2.1 venv)")
    bot_id, bot_token = bot_account(rest, org)
    log_path = tmp_path / "bot.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MATTERMOST_URL": "http://127.0.0.1",
        "MATTERMOST_PORT": str(live_node.port),
        "BOT_TOKEN": bot_token,
        "SSL_VERIFY": "false",
    }
    with log_path.open("wb") as log:
        bot = subprocess.Popen(
            [str(MMPY_PYTHON), "-c", BOT_SCRIPT], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        # The bot is ready once its websocket is registered: its status turns online.
        wait_until(
            lambda: bot.poll() is None and status_of(rest, org.admin, bot_id) == "online",
            20,
            "the bot to connect its websocket",
        )
        ping = rest.post(org.alice, org.public["id"], "ping")
        reply: dict[str, Any] = {}

        def answered() -> bool:
            if bot.poll() is not None:
                raise GiveUp(f"the bot exited:\n{log_path.read_text()[-3000:]}")
            posts = rest.call("GET", f"/channels/{org.public['id']}/posts", org.alice.token)
            for post in posts["posts"].values():
                if post["user_id"] == bot_id and post["root_id"] == ping["id"]:
                    reply.update(post)
                    return True
            return False

        wait_until(answered, 20, "the bot's pong")
        assert reply["message"] == "pong", reply
    finally:
        bot.terminate()
        try:
            bot.wait(10)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait(5)


# (c) @mattermost/client under Node


@pytest.fixture
def proxy(live_node: Node) -> Iterator[TCPProxy]:
    started = TCPProxy(live_node.port).start()
    try:
        yield started
    finally:
        started.stop()


def test_mattermost_client_pings_and_resumes_after_a_cut(
    live_node: Node, rest: Rest, org: Org, proxy: TCPProxy
) -> None:
    resumed_before = live_node.metric("mattermost_websocket_reconnects_total", type="success")
    reported_before = live_node.metric("hubbub_websocket_client_close_codes_total", code="1006")
    client = NodeClient(
        f"ws://127.0.0.1:{proxy.port}/api/v4/websocket",
        org.alice.token,
        PING_MS="1000",
        RETRY_MS="300",
        JITTER_MS="100",
    )
    try:
        client.wait(lambda: any(e["event"] == "hello" for e in client.events()), 10, "hello")
        # Its application ping: one on open, then one every second, each answered in time.
        client.wait(lambda: len(client.of("pong")) >= 3, 10, "three answered client pings")
        assert all(p["text"] == "pong" for p in client.of("pong"))
        assert not client.of("close"), f"closed while pinging: {client.of('close')}"

        live = [rest.post(org.bob, org.public["id"], f"live {i}")["id"] for i in range(3)]
        client.wait(lambda: _posted(client)[-1:] == live[-1:], 10, "the live posts")

        cut_at = int(time.time() * 1000)
        assert proxy.cut() == 1
        client.wait(lambda: bool(client.of("close")), 10, "the client to notice the cut")
        missed = [rest.post(org.bob, org.public["id"], f"missed {i}")["id"] for i in range(5)]
        proxy.restore()
        client.wait(lambda: bool(client.of("reconnect")), 15, "the client to reconnect")
        marker = rest.post(org.bob, org.public["id"], "after the cut")["id"]
        client.wait(lambda: marker in _posted(client), 10, "the events after the reconnect")

        events = client.events()
        assert [e["seq"] for e in events] == list(range(len(events))), events
        assert [e["event"] for e in events].count("hello") == 1, "resumed with a new hello"
        assert _posted(client) == [*live, *missed, marker]
        assert not client.of("missed"), "the missed-message listener fired"
        gaps = [line for line in client.of("log") if "missed websocket event" in line["text"]]
        assert not gaps, gaps
        assert not [c for c in client.of("close") if c["code"] in ("4000", "4001")], client.of(
            "close"
        )
        pongs_before_cut = [p for p in client.of("pong") if p["t"] < cut_at]
        client.wait(
            lambda: len(client.of("pong")) > len(pongs_before_cut), 5, "a ping answered after"
        )
        assert (
            live_node.metric("mattermost_websocket_reconnects_total", type="success")
            > resumed_before
        )
        assert (
            live_node.metric("hubbub_websocket_client_close_codes_total", code="1006")
            > reported_before
        ), "the client's disconnect_err_code was not counted"
    finally:
        client.stop()


def _posted(client: NodeClient) -> list[str]:
    return [e["post_id"] for e in client.events() if e["event"] == "posted"]


def test_mattermost_client_takes_over_after_a_silent_network_failure(
    live_node: Node, rest: Rest, org: Org, proxy: TCPProxy
) -> None:
    """The network path dies silently: the client's ping goes unanswered, it closes with 4000
    and reconnects while the server still holds its old socket open (§2c+ points 3, 4, 9)."""
    reported_before = live_node.metric("hubbub_websocket_client_close_codes_total", code="4000")
    client = NodeClient(
        f"ws://127.0.0.1:{proxy.port}/api/v4/websocket",
        org.carol.token,
        PING_MS="1000",
        RETRY_MS="300",
        JITTER_MS="100",
    )
    try:
        client.wait(lambda: len(client.of("pong")) >= 2, 10, "two answered client pings")
        hello = next(e for e in client.events() if e["event"] == "hello")
        live = rest.post(org.bob, org.public["id"], "before the freeze")["id"]
        client.wait(lambda: live in _posted(client), 10, "the live post")

        assert proxy.freeze() == 1
        missed = [
            rest.post(org.bob, org.public["id"], f"into the void {i}")["id"] for i in range(3)
        ]
        client.wait(
            lambda: any(c["code"] == "4000" for c in client.of("close")),
            10,
            "the client to give up on its unanswered ping (close 4000)",
        )
        client.wait(lambda: bool(client.of("reconnect")), 10, "the client to reconnect")
        marker = rest.post(org.bob, org.public["id"], "after the takeover")["id"]
        client.wait(lambda: marker in _posted(client), 10, "the events after the reconnect")

        events = client.events()
        assert [e["seq"] for e in events] == list(range(len(events))), events
        assert [e["event"] for e in events].count("hello") == 1, "a new stream instead of a resume"
        assert _posted(client) == [live, *missed, marker]
        assert not client.of("missed"), "the missed-message listener fired"
        # The server took the old socket over instead of waiting for it to time out.
        line = live_node.wait_close_line(hello["connection_id"])
        assert line["reason"] == "replaced", line
        assert (
            live_node.metric("hubbub_websocket_client_close_codes_total", code="4000")
            > reported_before
        ), "the client's disconnect_err_code 4000 was not counted"
    finally:
        client.stop()
