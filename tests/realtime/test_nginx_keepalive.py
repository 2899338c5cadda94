"""Behind nginx, the server's Ping frames are what keep an idle websocket open.

nginx closes a proxied connection when the upstream sends nothing for `proxy_read_timeout`
(3 s here). With hubbub pinging every 1 s, an idle authenticated client stays connected for 8 s
and still gets events; the control run, pinging every 30 s, shows nginx does cut an idle
connection at its timeout, so the first result is due to the pings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nginx import Nginx, start_nginx
from tests.support.node import Node, keepalive_settings, start_node
from tests.support.rest import Org, Rest, make_org
from tests.support.ws import RawWS, WSClosed, hello_of, read_until_post

PROXY_READ_TIMEOUT = 3
IDLE = 8.0


class Setup:
    def __init__(self, node: Node, proxy: Nginx, org: Org, rest: Rest) -> None:
        self.node = node
        self.proxy = proxy
        self.org = org
        self.rest = rest


@pytest.fixture
def behind_nginx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    ping, pong = request.param
    node = start_node(tmp_path / "node", keepalive_settings(ping, pong))
    proxy: Nginx | None = None
    rest: Rest | None = None
    try:
        proxy = start_nginx(node.port, read_timeout=f"{PROXY_READ_TIMEOUT}s")
        rest = Rest(node.url)
        yield Setup(node, proxy, make_org(rest), rest)
    finally:
        if rest is not None:
            rest.close()
        if proxy is not None:
            proxy.stop()
        node.server.stop()


def _idle(ws: RawWS, seconds: float) -> list[dict]:
    """Stays connected without any application traffic, answering pings like any client."""
    got = []
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        message = ws.recv_message(left)
        if message is not None:
            got.append(message)
    return got


@pytest.mark.parametrize("behind_nginx", [(1, 10)], indirect=True)
def test_pings_keep_an_idle_connection_open_through_nginx(behind_nginx: Setup) -> None:
    s = behind_nginx
    ws = RawWS.connect(s.proxy.port, token=s.org.alice.token)
    try:
        connection_id = hello_of(ws)["data"]["connection_id"]
        opened = time.monotonic()
        try:
            _idle(ws, IDLE)
        except WSClosed as closed:
            pytest.fail(
                f"nginx or hubbub closed the idle connection after "
                f"{time.monotonic() - opened:.1f}s ({closed}); nginx log:\n{s.proxy.error_log()}"
            )
        assert len(ws.pings) >= IDLE - 2, f"only {len(ws.pings)} pings in {IDLE}s"
        post = s.rest.post(s.org.bob, s.org.public["id"], "still there?")
        read_until_post(ws, post["id"])
        ws.send_close(1000)
        ws.wait_closed(5)
        line = s.node.wait_close_line(connection_id)
        assert line["reason"] == "client_close", line
        assert line["forwarded_for"] == "127.0.0.1", "the proxy's X-Forwarded-For was not logged"
    finally:
        ws.close()


@pytest.mark.parametrize("behind_nginx", [(30, 60)], indirect=True)
def test_control_without_timely_pings_nginx_cuts_the_idle_connection(
    behind_nginx: Setup,
) -> None:
    s = behind_nginx
    ws = RawWS.connect(s.proxy.port, token=s.org.alice.token)
    try:
        connection_id = hello_of(ws)["data"]["connection_id"]
        opened = time.monotonic()
        with pytest.raises(WSClosed) as closed:
            _idle(ws, IDLE)
        after = time.monotonic() - opened
        assert PROXY_READ_TIMEOUT - 0.5 <= after <= PROXY_READ_TIMEOUT + 2, (
            f"cut after {after:.1f}s ({closed.value})"
        )
        assert closed.value.tcp_only, f"nginx drops the connection, no close frame: {closed.value}"
        assert not ws.pings
        # hubbub saw the upstream connection go away too.
        line = s.node.wait_close_line(connection_id)
        assert line["close_code"] in (1005, 1006), line
    finally:
        ws.close()
