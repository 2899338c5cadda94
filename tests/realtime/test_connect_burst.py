"""A connect burst: 1,000 websockets opened at once, 20 times in a row against one node; every
single one must get `hello` as its first event, with seq 0, within the deadline.

A raw client (tests/support/burst.py) so that nothing is hidden: it reads the 101 answer and the
frames after it byte by byte, and says for each socket that failed what it got instead.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.support.burst import burst
from tests.support.node import Node
from tests.support.rest import People

SOCKETS = 1000
ROUNDS = int(os.environ.get("HUBBUB_BURST_ROUNDS", 20))


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    """Mattermost's keep-alive defaults: a burst on a loaded machine may take longer than the
    tier's 3-second pong timeout before the clients read their first frame."""
    return {}


async def test_every_socket_of_a_connect_burst_gets_hello_first_with_seq_0(
    live_node: Node, people: People, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = [p.token for p in (people.admin, people.alice, people.bob, people.carol)]
    timings = []
    for round_no in range(ROUNDS):
        started = time.monotonic()
        result = await burst(live_node.port, tokens, SOCKETS, hello_timeout=15)
        timings.append(time.monotonic() - started)
        assert not result.failures, (
            f"round {round_no + 1}: {len(result.failures)} of {SOCKETS} sockets did not get "
            f"hello first with seq 0: {result.failures[:5]}"
        )
        assert result.hellos == SOCKETS
    with capsys.disabled():
        print(
            f"\nconnect burst: {ROUNDS} x {SOCKETS} sockets, every one hello first with seq 0; "
            f"a round took {min(timings):.1f}-{max(timings):.1f} s"
        )
