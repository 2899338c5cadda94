"""A connect burst of many different users is batched: session lookups and presence writes of
the sockets that arrive together are made together (hubbub/batching.py).

Real node, real sockets: USERS users each open one websocket at the same moment. Every socket
gets hello first with seq 0, every user goes online, and the node makes far fewer database
reads than one per socket (unbatched it made at least three: the session, then the status read
twice); when they all close, every user goes offline.
"""

from __future__ import annotations

import pytest

from tests.support.burst import burst
from tests.support.node import Node
from tests.support.rest import Account, People, Rest
from tests.support.wait import wait_until, wait_until_async

USERS = 40


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    return {}


def _reads(node: Node) -> float:
    # Reads outside a request (websocket work) are counted as "fresh", on the primary.
    return node.metric("hubbub_db_queries_total", query_class="fresh")


def _statuses(rest: Rest, viewer: Account, users: list[Account]) -> set[str]:
    found = rest.call("POST", "/users/status/ids", viewer.token, [u.id for u in users])
    return {s["status"] for s in found}


async def test_a_burst_of_users_connecting_at_once_is_looked_up_and_written_in_batches(
    live_node: Node, rest: Rest, people: People
) -> None:
    users = [rest.user(people.admin, "burst") for _ in range(USERS)]
    before = _reads(live_node)

    async def all_online() -> None:
        await wait_until_async(
            lambda: _statuses(rest, people.admin, users) == {"online"}, 10, "every user online"
        )

    result = await burst(
        live_node.port, [u.token for u in users], USERS, hello_timeout=15, while_open=all_online
    )
    assert not result.failures, result.failures[:5]
    assert result.hellos == USERS
    reads = _reads(live_node) - before
    assert reads <= USERS / 2, f"{reads} database reads for {USERS} sockets: not batched"
    # burst() closed every socket once all were online.
    wait_until(
        lambda: _statuses(rest, people.admin, users) == {"offline"}, 10, "every user offline"
    )
