"""Read-your-writes across two nodes while the replica lags on purpose.

Two real nodes share a primary, its streaming replica (their read and search replica) and Redis
(where the write positions live). Replay on the replica is paused with `pg_wal_replay_pause()`,
so everything written from then on is missing there. A user who wrote reads it back on the
*other* node: fresh. A user who did not write reads from the stale replica (the control that
shows the replica really is behind and really serves reads), until a fresh websocket `hello`
makes that user's refetch fresh too (delivery invariant 9).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, start_cluster
from tests.support.replicated import ReplicatedPostgres
from tests.support.rest import Rest, make_org
from tests.support.ws import RawWS, hello_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_nodes(pair: ReplicatedPostgres, replica_env: dict[str, str]) -> Iterator[Cluster]:
    settings = {k: v for k, v in replica_env.items() if "FILESETTINGS" not in k}
    cluster = start_cluster(pair.primary.url, nodes=2, settings=settings, with_nginx=False)
    try:
        yield cluster
    finally:
        cluster.close()


def _post_ids(rest: Rest, token: str, channel_id: str) -> set[str]:
    return set(rest.call("GET", f"/channels/{channel_id}/posts", token)["order"])


def test_a_users_reads_see_their_writes_on_every_node(
    two_nodes: Cluster, pair: ReplicatedPostgres
) -> None:
    a, b = Rest(two_nodes[0].url), Rest(two_nodes[1].url)
    try:
        org = make_org(a)
        pair.wait_replayed()
        # Sessions known to both nodes before the replica stops replaying.
        for rest in (a, b):
            for who in (org.alice, org.bob, org.carol):
                rest.call("GET", "/users/me", who.token)
        replica_reads_before = sum(
            n.metric("hubbub_db_queries_total", query_class="read", role="replica")
            for n in two_nodes
        )
        pair.pause_replay()

        # Create a channel on node 0, read it on node 1 (and list it).
        channel = a.channel(org.alice, org.team["id"])
        got = b.call("GET", f"/channels/{channel['id']}", org.alice.token)
        assert got["id"] == channel["id"]
        mine = b.call("GET", f"/users/me/teams/{org.team['id']}/channels", org.alice.token)
        assert channel["id"] in {c["id"] for c in mine}
        # Control: carol wrote nothing, reads the stale replica, and the channel is not there.
        b.call("GET", f"/channels/{channel['id']}", org.carol.token, expect=404)

        # Post on node 1, read the history on node 0.
        post = b.post(org.alice, org.public["id"], "written while the replica is paused")
        assert post["id"] in _post_ids(a, org.alice.token, org.public["id"])
        # Control: bob's read (no write of his) misses it.
        assert post["id"] not in _post_ids(b, org.bob.token, org.public["id"])

        # A channel view (written in a batch, outside the request) on node 0, read back on
        # node 1: carol's member row shows the mark she just set.
        viewed = a.call(
            "POST", "/channels/members/me/view", org.carol.token, {"channel_id": org.public["id"]}
        )["last_viewed_at_times"][org.public["id"]]
        member = b.call("GET", f"/channels/{org.public['id']}/members/me", org.carol.token)
        assert member["last_viewed_at"] == viewed

        # A fresh hello for bob on node 0: his refetch on node 1 sees everything before it.
        ws = RawWS.connect(two_nodes[0].port, token=org.bob.token)
        try:
            hello_of(ws)
            assert post["id"] in _post_ids(b, org.bob.token, org.public["id"])
            assert b.call("GET", f"/channels/{channel['id']}", org.bob.token)["id"]
        finally:
            ws.close()

        replica_reads = (
            sum(
                n.metric("hubbub_db_queries_total", query_class="read", role="replica")
                for n in two_nodes
            )
            - replica_reads_before
        )
        assert replica_reads > 0, "the controls should have been served by the replica"
    finally:
        pair.resume_replay()
        a.close()
        b.close()


def test_what_an_admin_takes_away_is_obeyed_at_once_despite_the_lag(
    two_nodes: Cluster, pair: ReplicatedPostgres
) -> None:
    """Memberships and roles taken away by someone else (`Database.affects`): the user's next
    permission check, on the other node, is not decided on the paused replica, where the user
    still has them."""
    a, b = Rest(two_nodes[0].url), Rest(two_nodes[1].url)
    try:
        org = make_org(a)
        channel = org.private["id"]
        a.call(
            "PUT",
            f"/channels/{channel}/members/{org.bob.id}/roles",
            org.admin.token,
            {"roles": "channel_user channel_admin"},
        )
        pair.wait_replayed()
        for rest in (a, b):
            rest.call("GET", "/users/me", org.bob.token)
        # Bob, a channel admin, may set the roles of its members.
        alices_roles = f"/channels/{channel}/members/{org.alice.id}/roles"
        b.call("PUT", alices_roles, org.bob.token, {"roles": "channel_user"})
        pair.wait_replayed()
        pair.pause_replay()

        a.call(
            "PUT",
            f"/channels/{channel}/members/{org.bob.id}/roles",
            org.admin.token,
            {"roles": "channel_user"},
        )
        b.call("PUT", alices_roles, org.bob.token, {"roles": "channel_user"}, expect=403)

        a.call("DELETE", f"/channels/{channel}/members/{org.bob.id}", org.admin.token)
        b.call("GET", f"/channels/{channel}/posts", org.bob.token, expect=403)
        # Control: alice, whom nothing was taken from, still reads the channel on node 1.
        b.call("GET", f"/channels/{channel}/posts", org.alice.token)
    finally:
        pair.resume_replay()
        a.close()
        b.close()
