"""HTTP keep-alive follows `ServiceSettings.IdleTimeout`, as in Mattermost (60 s by default).

uvicorn's own default closes an idle connection after 5 s, so a client that pools connections
(the web app, the mobile apps, nginx's upstream keepalive) raced the close and saw errors. One
raw HTTP/1.1 connection to a real node with a small IdleTimeout: idle for 6 s it still serves the
next request, and the node closes it only once IdleTimeout has passed.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.node import Node, start_node

IDLE_TIMEOUT = 9


@pytest.fixture(scope="module")
def idle_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    node = start_node(
        tmp_path_factory.mktemp("idle"),
        {"MM_SERVICESETTINGS_IDLETIMEOUT": str(IDLE_TIMEOUT)},
    )
    try:
        yield node
    finally:
        node.server.stop()


def _request(sock: socket.socket) -> bytes:
    """Sends GET /api/v4/system/ping and reads exactly its response (Content-Length)."""
    sock.sendall(b"GET /api/v4/system/ping HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of a response"
        body += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def _closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the peer closed the connection within `timeout` (EOF), False otherwise."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def test_an_idle_keepalive_connection_lives_until_idle_timeout(idle_node: Node) -> None:
    with socket.create_connection(("127.0.0.1", idle_node.port), timeout=10) as sock:
        _request(sock)
        # Idle longer than uvicorn's default 5 s: the same connection still answers.
        assert not _closed_by_peer(sock, 6.0), "the node closed an idle connection after <6 s"
        _request(sock)
        answered = time.monotonic()
        # Then the node closes it, once IdleTimeout has passed (not much later).
        assert not _closed_by_peer(sock, IDLE_TIMEOUT - 1.5), "closed before IdleTimeout"
        assert _closed_by_peer(sock, 15.0), "the node kept the idle connection open"
        waited = time.monotonic() - answered
        assert waited >= IDLE_TIMEOUT - 1.5, waited
