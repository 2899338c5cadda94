"""Free loopback ports, and starting a server on them in spite of the race between pick and bind.

`free_port()` asks the kernel for a port that is free now; by the time a server process binds it,
another process (a parallel test run, another suite on the same machine) may have taken it. So
every starter in tests/support launches once per attempt with freshly picked ports and, when the
process exits saying "Address already in use" (`PortTaken`, from `exited()`), goes again through
`start_on_free_ports`, a few times, before it fails naming the clashes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import TypeVar

from tests.support.wait import GiveUp

T = TypeVar("T")

ATTEMPTS = 4
# uvicorn: "[Errno 98] error while attempting to bind ... address already in use"; prometheus'
# server: "OSError: [Errno 98] Address already in use"; PostgreSQL: "could not bind IPv4 address
# ...: Address already in use"; Redis: "bind: Address already in use"; nginx: "bind() to ...
# failed (98: Address already in use)"; moto (werkzeug): "Address already in use".
ADDRESS_IN_USE = re.compile(r"address already in use|EADDRINUSE", re.IGNORECASE)


class ProcessExited(GiveUp):
    """A server process exited while it was being started."""


class PortTaken(ProcessExited):
    """A server process exited because a port it was given was taken in the meantime."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def exited(what: str, returncode: int | None, output: str) -> ProcessExited:
    """The error for `what` having exited during start-up, `PortTaken` when `output` (what
    this launch wrote to its log) says a port was in use."""
    kind = PortTaken if ADDRESS_IN_USE.search(output) else ProcessExited
    return kind(f"{what} exited with {returncode}:\n{output[-4000:]}")


def start_on_free_ports(start: Callable[[], T], what: str, attempts: int = ATTEMPTS) -> T:
    """Calls `start` (which picks its ports anew on every call) until it does not raise
    `PortTaken`, at most `attempts` times."""
    clashes: list[PortTaken] = []
    for _ in range(attempts):
        try:
            return start()
        except PortTaken as exc:
            clashes.append(exc)
    raise PortsKeptTaken(what, clashes)


class PortsKeptTaken(RuntimeError):
    def __init__(self, what: str, clashes: list[PortTaken]) -> None:
        super().__init__(
            f"{what} could not be started: {len(clashes)} times in a row a port picked for it "
            f"was taken before it bound it; the last attempt:\n{clashes[-1]}"
        )
        self.clashes = clashes
