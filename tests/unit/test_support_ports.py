"""The test rig's answer to a port taken between picking it and binding it: the starter notices
the clash from the process's exit and its log, and starts again on fresh ports."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import node as node_module
from tests.support import server as server_module
from tests.support.ports import (
    PortsKeptTaken,
    PortTaken,
    ProcessExited,
    exited,
    free_port,
    start_on_free_ports,
)


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port held by a listening socket for the test's duration."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def picks_first(port: int) -> tuple[list[int], Callable[[], int]]:
    """Stand-in for `free_port`: `port` first, then real free ports; remembers each pick."""
    picked: list[int] = []

    def pick() -> int:
        picked.append(port if not picked else free_port())
        return picked[-1]

    return picked, pick


@pytest.mark.parametrize(
    "output",
    [
        "ERROR: [Errno 98] error while attempting to bind on address ('127.0.0.1', 5): "
        "address already in use",
        "OSError: [Errno 98] Address already in use",
        'LOG:  could not bind IPv4 address "127.0.0.1": Address already in use',
        "# Warning: Could not create server TCP listening socket 127.0.0.1:5: bind: Address "
        "already in use",
        "nginx: [emerg] bind() to 127.0.0.1:5 failed (98: Address already in use)",
    ],
)
def test_an_exit_after_a_bind_clash_is_port_taken(output: str) -> None:
    error = exited("server", 1, "starting\n" + output + "\n")
    assert isinstance(error, PortTaken)
    assert "server exited with 1" in str(error) and output in str(error)


def test_any_other_exit_is_not_retried() -> None:
    error = exited("server", 3, "ValueError: bad setting")
    assert type(error) is ProcessExited
    calls = 0

    def start() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(ProcessExited, match="bad setting"):
        start_on_free_ports(start, "server")
    assert calls == 1


def test_clashes_are_retried_then_reported() -> None:
    attempts: list[int] = []

    def start() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise PortTaken(f"clash {len(attempts)}")
        return "up"

    assert start_on_free_ports(start, "server") == "up"
    assert attempts == [0, 1, 2]

    def always() -> None:
        raise PortTaken("Address already in use on 1234")

    with pytest.raises(PortsKeptTaken) as failed:
        start_on_free_ports(always, "the thing", attempts=3)
    assert len(failed.value.clashes) == 3
    assert "the thing could not be started: 3 times in a row" in str(failed.value)
    assert "Address already in use on 1234" in str(failed.value)


def test_hubbub_serve_moves_off_a_taken_http_port(
    taken: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picked, pick = picks_first(taken)
    monkeypatch.setattr(server_module, "free_port", pick)
    server = server_module.start_server(tmp_path, {"MM_SQLSETTINGS_DATASOURCE": "h.db"})
    try:
        assert picked[0] == taken and server.port == picked[-1] != taken
        clash = (tmp_path / f"hubbub-{taken}.log").read_text()
        assert "address already in use" in clash.lower()
    finally:
        server.stop()


def test_a_node_moves_off_a_taken_metrics_port(
    taken: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clash that cost cluster tests: the metrics port, picked first, was taken."""
    picked, pick = picks_first(taken)
    monkeypatch.setattr(node_module, "free_port", pick)
    started = node_module.start_node(tmp_path)
    try:
        assert picked[0] == taken and started.metrics_port not in (taken, started.port)
        assert started.metric("hubbub_websocket_connections") == 0
        first_log = tmp_path / f"hubbub-{picked[1]}.log"
        assert "address already in use" in first_log.read_text().lower()
    finally:
        started.server.stop()
