"""Across nodes: every event type made through node A reaches sockets on nodes B and C, with
exact presence, fresh membership and session revocation that follows everywhere.

Node A is `cluster[0]`, B `cluster[1]`, C `cluster[2]`; every change is made through A's REST
API (or, for typing, a socket on A), and every expectation is read from sockets held directly on
B and C (no nginx in between), so nothing can arrive except over the cluster's Redis.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.cluster import Cluster
from tests.support.rest import PASSWORD, Account, Org, Rest, status_of
from tests.support.stream import Message, Stream, post_data
from tests.support.wait import wait_until
from tests.support.ws import RawWS, WSClosed, post_id_of

SRC = Path(__file__).resolve().parents[2] / "src" / "hubbub"

# Every event type the server publishes, and the test that sees it cross nodes: the core ones in
# test_every_event_type_crosses_nodes, the others in the tests named beside them.
CORE = {
    "posted",
    "post_edited",
    "post_deleted",
    "reaction_added",
    "reaction_removed",
    "typing",
    "channel_created",
    "channel_updated",
    "channel_deleted",
    "channel_restored",
    "channel_member_updated",
    "multiple_channels_viewed",
    "direct_added",
    "group_added",
    "user_added",
    "user_removed",
    "added_to_team",
    "leave_team",
    "update_team",
    "delete_team",
    "memberrole_updated",
    "status_change",
    "ephemeral_message",
}
# test_app_state_events_cross_nodes
COVERED = CORE | {
    "preferences_changed",
    "preferences_deleted",
    "sidebar_category_created",
    "sidebar_category_updated",
    "sidebar_category_order_updated",
    "sidebar_category_deleted",
    "role_updated",
}

# tests/browser/test_cluster.py (the console test): the leader, whichever node it is, tells the
# system admins' websockets on every node that the cluster's picture changed.
COVERED |= {"hubbub_console_changed"}

LATENCY_POSTS = 200

# test_thread_draft_and_emoji_events_cross_nodes (at the end of this file)
COVERED |= {
    "thread_updated",
    "thread_read_changed",
    "thread_follow_changed",
    "draft_created",
    "draft_updated",
    "draft_deleted",
    "emoji_added",
    "user_updated",
}


def _new_user(rest: Rest, org: Org, prefix: str) -> Account:
    user = rest.user(org.admin, prefix)
    rest.join_team(org.admin, org.team["id"], user)
    return user


def _login(rest: Rest, user: Account, device_id: str = "") -> str:
    body = {"login_id": user.username, "password": PASSWORD, "device_id": device_id}
    resp = rest.http.post("/users/login", json=body)
    assert resp.status_code == 200, resp.text
    return str(resp.headers["Token"])


def test_every_published_event_type_is_covered() -> None:
    """The list above is complete: a new event type must get a cross-node check here."""
    published: set[str] = set()
    for path in SRC.rglob("*.py"):
        published.update(re.findall(r'Event\(\s*"([a-z_]+)"', path.read_text()))
    assert published, "no Event(...) publications found under src/hubbub"
    assert published <= COVERED, f"not covered across nodes: {sorted(published - COVERED)}"


def test_every_event_type_crosses_nodes(cluster: Cluster, rests: list[Rest], org: Org) -> None:
    a = rests[0]
    node_a, node_b, node_c = cluster[0], cluster[1], cluster[2]
    bob_b = Stream.open(node_b, org.bob)
    carol_c = Stream.open(node_c, org.carol)
    alice_a = Stream.open(node_a, org.alice)
    streams = (bob_b, carol_c, alice_a)
    seen: set[str] = set()

    def both(name: str, **data: Any) -> None:
        bob_b.expect_event(name, **data)
        carol_c.expect_event(name, **data)
        seen.add(name)

    def post_event(stream: Stream, name: str, post_id: str, **fields: Any) -> Message:
        def matches(m: Message) -> bool:
            if m.get("event") != name:
                return False
            post = post_data(m)
            return post["id"] == post_id and all(post.get(k) == v for k, v in fields.items())

        return stream.expect(matches, 5, f"{name} of {post_id} {fields}")

    try:
        for s in streams:
            s.hello()
        public = org.public["id"]

        # Posts, edits, reactions, deletes.
        post = a.post(org.alice, public, "made on A")
        for s in (bob_b, carol_c):
            s.expect_post(post["id"])
        seen.add("posted")
        a.call("PUT", f"/posts/{post['id']}/patch", org.alice.token, {"message": "edited on A"})
        for s in (bob_b, carol_c):
            post_event(s, "post_edited", post["id"], message="edited on A")
        seen.add("post_edited")
        reaction = {"user_id": org.bob.id, "post_id": post["id"], "emoji_name": "smile"}
        a.call("POST", "/reactions", org.bob.token, reaction, 201)
        for s in (bob_b, carol_c):
            s.expect(
                lambda m: (
                    m.get("event") == "reaction_added"
                    and json.loads(m["data"]["reaction"])["post_id"] == post["id"]
                ),
                5,
                "reaction_added",
            )
        seen.add("reaction_added")
        a.call("DELETE", f"/users/{org.bob.id}/posts/{post['id']}/reactions/smile", org.bob.token)
        for s in (bob_b, carol_c):
            s.expect(
                lambda m: (
                    m.get("event") == "reaction_removed"
                    and json.loads(m["data"]["reaction"])["post_id"] == post["id"]
                ),
                5,
                "reaction_removed",
            )
        seen.add("reaction_removed")
        a.call("DELETE", f"/posts/{post['id']}", org.alice.token)
        for s in (bob_b, carol_c):
            post_event(s, "post_deleted", post["id"])
        seen.add("post_deleted")

        # Typing, from a socket on A.
        alice_a.ws.send_json(
            {"seq": 1, "action": "user_typing", "data": {"channel_id": public, "parent_id": ""}}
        )
        assert alice_a.expect(lambda m: m.get("seq_reply") == 1)["status"] == "OK"
        both("typing", user_id=org.alice.id)

        # A private channel of bob's: created, carol added, updated, her membership changed,
        # carol removed.
        private = a.channel(org.bob, org.team["id"], "P")
        bob_b.expect_event("channel_created", channel_id=private["id"])
        seen.add("channel_created")
        a.join_channel(org.bob, private["id"], org.carol)
        both("user_added", user_id=org.carol.id, team_id=org.team["id"])
        a.call("PUT", f"/channels/{private['id']}/patch", org.bob.token, {"display_name": "New"})
        for s in (bob_b, carol_c):
            s.expect(
                lambda m: (
                    m.get("event") == "channel_updated"
                    and json.loads(m["data"]["channel"])["display_name"] == "New"
                ),
                5,
                "channel_updated",
            )
        seen.add("channel_updated")
        a.call(
            "PUT",
            f"/channels/{private['id']}/members/{org.carol.id}/notify_props",
            org.carol.token,
            {"channel_id": private["id"], "user_id": org.carol.id, "desktop": "none"},
        )
        carol_c.expect_event("channel_member_updated")
        seen.add("channel_member_updated")
        a.call("DELETE", f"/channels/{private['id']}/members/{org.carol.id}", org.bob.token)
        both("user_removed", user_id=org.carol.id, channel_id=private["id"])

        # Viewing a channel (Mattermost 7+ sends multiple_channels_viewed, not channel_viewed).
        a.call("POST", "/channels/members/me/view", org.carol.token, {"channel_id": public})
        viewed = carol_c.expect_event("multiple_channels_viewed")
        assert public in viewed["data"]["channel_times"], viewed
        seen.add("multiple_channels_viewed")

        # A brand-new DM and group: membership decided at publish time on every node.
        dm = a.call("POST", "/channels/direct", org.alice.token, [org.alice.id, org.carol.id], 201)
        carol_c.expect_event("direct_added", teammate_id=org.carol.id)
        seen.add("direct_added")
        dm_post = a.post(org.alice, dm["id"], "a first DM")
        carol_c.expect_post(dm_post["id"])
        a.call(
            "POST",
            "/channels/group",
            org.alice.token,
            [org.alice.id, org.bob.id, org.carol.id],
            201,
        )
        both("group_added")

        # A channel deleted and restored (a public one: the whole team hears it).
        doomed = a.channel(org.admin, org.team["id"], "O")
        a.call("DELETE", f"/channels/{doomed['id']}", org.admin.token)
        both("channel_deleted", channel_id=doomed["id"])
        a.call("POST", f"/channels/{doomed['id']}/restore", org.admin.token)
        both("channel_restored", channel_id=doomed["id"])

        # A second team: carol added, the team renamed, her role changed, carol removed.
        team2 = a.team(org.admin)
        a.join_team(org.admin, team2["id"], org.carol)
        carol_c.expect_event("added_to_team", team_id=team2["id"], user_id=org.carol.id)
        seen.add("added_to_team")
        a.call("PUT", f"/teams/{team2['id']}/patch", org.admin.token, {"display_name": "Renamed"})
        carol_c.expect_event("update_team")
        seen.add("update_team")
        a.call(
            "PUT",
            f"/teams/{team2['id']}/members/{org.carol.id}/roles",
            org.admin.token,
            {"roles": "team_user team_admin"},
        )
        carol_c.expect_event("memberrole_updated")
        seen.add("memberrole_updated")
        a.call("DELETE", f"/teams/{team2['id']}/members/{org.carol.id}", org.admin.token)
        carol_c.expect_event("leave_team", team_id=team2["id"], user_id=org.carol.id)
        seen.add("leave_team")
        # Deleting a team goes to every connected user, wherever they are connected.
        a.call("DELETE", f"/teams/{team2['id']}", org.admin.token)
        both("delete_team")

        # Status set through A reaches the user's socket on C.
        a.call(
            "PUT",
            f"/users/{org.carol.id}/status",
            org.carol.token,
            {"user_id": org.carol.id, "status": "dnd"},
        )
        carol_c.expect_event("status_change", status="dnd", user_id=org.carol.id)
        a.call(
            "PUT",
            f"/users/{org.carol.id}/status",
            org.carol.token,
            {"user_id": org.carol.id, "status": "online"},
        )
        carol_c.expect_event("status_change", status="online", user_id=org.carol.id)
        seen.add("status_change")

        # An ephemeral post for carol only.
        a.call(
            "POST",
            "/posts/ephemeral",
            org.admin.token,
            {"user_id": org.carol.id, "post": {"channel_id": public, "message": "psst"}},
            201,
        )
        carol_c.expect_event("ephemeral_message")
        seen.add("ephemeral_message")

        for s in streams:
            s.check_seq()
        assert seen == CORE, f"not exercised: {sorted(CORE - seen)}"
    finally:
        for s in streams:
            s.close()


def test_user_updated_crosses_nodes(cluster: Cluster, rests: list[Rest], org: Org) -> None:
    """Mattermost sends user_updated (sanitized) to everyone when a user's profile changes."""
    bob_b = Stream.open(cluster[1], org.bob)
    try:
        bob_b.hello()
        rests[0].call("PUT", f"/users/{org.carol.id}/patch", org.carol.token, {"nickname": "Caz"})
        bob_b.expect(
            lambda m: m.get("event") == "user_updated" and m["data"]["user"]["id"] == org.carol.id,
            3,
            "user_updated",
        )
    finally:
        bob_b.close()


def test_new_user_crosses_nodes(cluster: Cluster, rests: list[Rest], org: Org) -> None:
    """Mattermost sends new_user to everyone when an account is created."""
    bob_b = Stream.open(cluster[1], org.bob)
    try:
        bob_b.hello()
        user = rests[0].user(org.admin, "newcomer")
        bob_b.expect_event("new_user", 3, user_id=user.id)
    finally:
        bob_b.close()


def test_app_state_events_cross_nodes(cluster: Cluster, rests: list[Rest], org: Org) -> None:
    """What the official apps keep in sync between a user's devices (preferences, sidebar
    categories) reaches the user's device on another node and nobody else's; a role patch
    reaches everyone everywhere."""
    a = rests[0]
    alice_b = Stream.open(cluster[1], org.alice, label="alice's phone on B")
    alice_c = Stream.open(cluster[2], org.alice, label="alice's laptop on C")
    bob_c = Stream.open(cluster[2], org.bob)
    streams = (alice_b, alice_c, bob_c)
    base = f"/users/{org.alice.id}/teams/{org.team['id']}/channels/categories"
    a.call("GET", base, org.alice.token)
    role = a.call("GET", "/roles/name/team_post_all_public", org.admin.token)
    try:
        for st in streams:
            st.hello()
        pref = {
            "user_id": org.alice.id,
            "category": "display_settings",
            "name": "use_military_time",
            "value": "true",
        }
        a.call("PUT", "/users/me/preferences", org.alice.token, [pref])
        a.call("POST", "/users/me/preferences/delete", org.alice.token, [pref])
        body = {
            "user_id": org.alice.id,
            "team_id": org.team["id"],
            "display_name": "Later",
            "channel_ids": [org.public["id"]],
        }
        created = a.call("POST", base, org.alice.token, body)
        a.call("PUT", f"{base}/{created['id']}", org.alice.token, {**created, "collapsed": True})
        order = a.call("GET", f"{base}/order", org.alice.token)
        a.call("PUT", f"{base}/order", org.alice.token, list(reversed(order)))
        a.call("DELETE", f"{base}/{created['id']}", org.alice.token)
        a.call("PUT", f"/roles/{role['id']}/patch", org.admin.token, {"permissions": []})
        for device in (alice_b, alice_c):
            device.expect(
                lambda m: (
                    m.get("event") == "preferences_changed"
                    and json.loads(m["data"]["preferences"]) == [pref]
                ),
                5,
                "preferences_changed",
            )
            device.expect_event("preferences_deleted")
            device.expect_event("sidebar_category_created", category_id=created["id"])
            device.expect_event("sidebar_category_updated")
            device.expect_event("sidebar_category_order_updated")
            device.expect_event("sidebar_category_deleted", category_id=created["id"])
        for st in streams:
            st.expect(
                lambda m: (
                    m.get("event") == "role_updated"
                    and json.loads(m["data"]["role"])["id"] == role["id"]
                ),
                5,
                "role_updated",
            )
        # Bob's stream has everything up to the role patch, which came last: none of it was his.
        private = {e.get("event") for e in bob_c.events()}
        assert not private & {
            "preferences_changed",
            "preferences_deleted",
            "sidebar_category_created",
            "sidebar_category_updated",
            "sidebar_category_order_updated",
            "sidebar_category_deleted",
        }
    finally:
        a.call(
            "PUT",
            f"/roles/{role['id']}/patch",
            org.admin.token,
            {"permissions": role["permissions"]},
        )
        for st in streams:
            st.close()


# Latency


class Arrivals(threading.Thread):
    """Reads a socket in the background and notes when each post's `posted` arrived."""

    def __init__(self, ws: RawWS) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.at: dict[str, float] = {}
        self.stopping = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping:
                message = self.ws.recv_message(0.2)
                if message is None:
                    continue
                post_id = post_id_of(message)
                if post_id:
                    self.at[post_id] = time.monotonic()
        except WSClosed:
            pass
        except BaseException as exc:
            self.error = exc


def _arrived(readers: list[Arrivals], post_id: str) -> Callable[[], bool]:
    return lambda: all(post_id in r.at for r in readers)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_cross_node_latency(
    cluster: Cluster, rests: list[Rest], org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    """POST on A → `posted` read on B and on C, one post at a time (no queueing), reported as
    p50/p99. Reported, not asserted (DESIGN §8: timing assertions do not belong in tests)."""
    bob_b = RawWS.connect(cluster[1].port, token=org.bob.token)
    carol_c = RawWS.connect(cluster[2].port, token=org.carol.token)
    readers = [Arrivals(bob_b), Arrivals(carol_c)]
    for ws in (bob_b, carol_c):
        assert ws.expect(5, "hello")["event"] == "hello"
    for reader in readers:
        reader.start()
    sent: dict[str, float] = {}
    round_trips: list[float] = []
    try:
        for i in range(LATENCY_POSTS):
            t0 = time.monotonic()
            post = rests[0].post(org.alice, org.public["id"], f"latency {i}")
            round_trips.append(time.monotonic() - t0)
            sent[post["id"]] = t0
            wait_until(_arrived(readers, post["id"]), 5, f"post {i} on B and C")
    finally:
        for reader in readers:
            reader.stopping = True
        for reader in readers:
            reader.join(5)
        bob_b.close()
        carol_c.close()
    for reader in readers:
        assert reader.error is None, reader.error
    lat = {
        name: [(r.at[pid] - t0) * 1000 for pid, t0 in sent.items()]
        for name, r in zip(("B", "C"), readers, strict=True)
    }
    rtt = [x * 1000 for x in round_trips]
    with capsys.disabled():
        print(f"\ncross-node latency over {LATENCY_POSTS} posts (POST sent on A -> posted read):")
        for name, values in (*lat.items(), ("POST round trip on A", rtt)):
            print(
                f"  {name}: p50 {_percentile(values, 0.5):.1f} ms, "
                f"p99 {_percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms"
            )
    assert len(sent) == LATENCY_POSTS


# Event scope (FeatureFlags.WebSocketEventScope, hubbub/realtime/scope.py)


def test_typing_and_reactions_follow_each_connections_open_channel_on_every_node(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    """Typing from a socket on A and a reaction made through A reach bob on B, who has the
    channel open, and not carol on C, who has another channel and other threads open: the
    event crosses the bus and each node filters for its own connections."""
    public = org.public["id"]
    elsewhere = "e" * 26
    alice_a = Stream.open(cluster[0], org.alice)
    bob_b = Stream.open(cluster[1], org.bob)
    carol_c = Stream.open(cluster[2], org.carol)
    streams = (alice_a, bob_b, carol_c)

    def presence(stream: Stream, seq: int, data: dict[str, Any]) -> None:
        stream.ws.send_json({"seq": seq, "action": "presence", "data": data})
        assert stream.expect(lambda m: m.get("seq_reply") == seq)["status"] == "OK"

    try:
        for s in streams:
            s.hello()
        presence(bob_b, 1, {"channel_id": public})
        presence(carol_c, 1, {"channel_id": elsewhere})
        presence(carol_c, 2, {"thread_channel_id": elsewhere, "is_thread_view": False})
        presence(carol_c, 3, {"thread_channel_id": elsewhere, "is_thread_view": True})

        alice_a.ws.send_json(
            {"seq": 1, "action": "user_typing", "data": {"channel_id": public, "parent_id": ""}}
        )
        assert alice_a.expect(lambda m: m.get("seq_reply") == 1)["status"] == "OK"
        post = rests[0].post(org.alice, public, "react to me")
        reaction = {"user_id": org.alice.id, "post_id": post["id"], "emoji_name": "smile"}
        rests[0].call("POST", "/reactions", org.alice.token, reaction, 201)
        marker = rests[0].post(org.alice, public, "marker")["id"]

        bob_b.expect_event("typing", user_id=org.alice.id)
        bob_b.expect_event("reaction_added")
        carol_c.expect_post(marker)
        kinds = {m["event"] for m in carol_c.events()}
        assert not {"typing", "reaction_added"} & kinds, carol_c.events()
        for s in (bob_b, carol_c):
            s.check_seq()
    finally:
        for s in streams:
            s.close()


# Presence


def test_presence_follows_the_last_connection_anywhere(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a = rests[0]
    dave = _new_user(a, org, "dave")
    assert status_of(a, org.admin, dave.id) == "offline"

    on_b = Stream.open(cluster[1], dave)
    on_b.hello()
    # Connected only on B: online when asked on A.
    wait_until(lambda: status_of(a, org.admin, dave.id) == "online", 5, "dave online on A")

    on_c = Stream.open(cluster[2], dave)
    hello_c = on_c.hello()
    hello_b = on_b.events()[0]
    on_b.close_cleanly()
    cluster[1].wait_close_line(hello_b["data"]["connection_id"])
    # Still connected on C: stays online (observed for a second, on A and on his socket on C).
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert status_of(a, org.admin, dave.id) == "online", "offline while connected on C"
    on_c.none_within(
        lambda m: m.get("event") == "status_change" and m["data"]["status"] == "offline", 0.2
    )
    on_c.close_cleanly()
    cluster[2].wait_close_line(hello_c["data"]["connection_id"])
    wait_until(lambda: status_of(a, org.admin, dave.id) == "offline", 5, "dave offline on A")
    for rest in rests[1:]:
        assert status_of(rest, org.admin, dave.id) == "offline"


def test_user_whose_node_was_killed_goes_offline(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    """Connected only on B, B is SIGKILLed: nobody closes the socket cleanly, but the node's
    presence entries run out (three heartbeats, 15 s), and the user must then read as
    offline."""
    a = rests[0]
    gina = _new_user(a, org, "gina")
    on_b = Stream.open(cluster[1], gina)
    on_b.hello()
    wait_until(lambda: status_of(a, org.admin, gina.id) == "online", 5, "gina online on A")
    cluster.kill(1)
    on_b.close()
    wait_until(
        lambda: status_of(a, org.admin, gina.id) == "offline",
        25,
        "gina offline after her only node was killed",
    )


def test_new_dm_and_group_reach_users_on_other_nodes(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    """A first DM between users connected to B and C, created and posted through A: both get
    `direct_added` and the post (pain point 4: a stale membership cache filters it out)."""
    a = rests[0]
    for round_ in range(5):
        u1 = _new_user(a, org, f"dm{round_}a")
        u2 = _new_user(a, org, f"dm{round_}b")
        s1, s2 = Stream.open(cluster[1], u1), Stream.open(cluster[2], u2)
        try:
            s1.hello()
            s2.hello()
            dm = a.call("POST", "/channels/direct", u1.token, [u1.id, u2.id], 201)
            for s in (s1, s2):
                s.expect_event("direct_added", teammate_id=u2.id)
            first = a.post(u1, dm["id"], "hi there")
            reply = a.post(u2, dm["id"], "hello back")
            for s in (s1, s2):
                s.expect_post(first["id"])
                s.expect_post(reply["id"])
            u3 = _new_user(a, org, f"gm{round_}")
            s3 = Stream.open(cluster[0], u3)
            try:
                s3.hello()
                gm = a.call("POST", "/channels/group", u1.token, [u1.id, u2.id, u3.id], 201)
                for s in (s1, s2, s3):
                    s.expect_event("group_added")
                gm_post = rests[2].post(u3, gm["id"], "group hello")
                for s in (s1, s2, s3):
                    s.expect_post(gm_post["id"])
                    s.check_seq()
            finally:
                s3.close()
        finally:
            s1.close()
            s2.close()


# Session revocation


def _refused_everywhere(rests: list[Rest], token: str) -> None:
    for i, rest in enumerate(rests):
        resp = rest.http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, f"node{i} still accepts the revoked token: {resp.text}"


def _accepted_everywhere(rests: list[Rest], token: str) -> None:
    """Also warms every node's session cache, so a stale cache would show."""
    for i, rest in enumerate(rests):
        resp = rest.http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, f"node{i}: {resp.text}"


def _sockets(cluster: Cluster, tokens: list[str]) -> list[tuple[int, RawWS, str]]:
    """One socket per token, on B then C; returns (node index, socket, connection id)."""
    out = []
    for index, token in zip((1, 2), tokens, strict=True):
        ws = RawWS.connect(cluster[index].port, token=token)
        hello = ws.expect(5, "hello")
        out.append((index, ws, str(hello["data"]["connection_id"])))
    return out


def _closed_as_revoked(cluster: Cluster, sockets: list[tuple[int, RawWS, str]]) -> None:
    for index, ws, connection_id in sockets:
        try:
            closed = ws.wait_closed(5)
        finally:
            ws.close()
        assert not closed.tcp_only, f"node{index} dropped the socket without a close frame"
        line = cluster[index].wait_close_line(connection_id)
        assert line["reason"] == "session_revoked", line


def test_logout_on_a_closes_sockets_on_every_node(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a = rests[0]
    erin = _new_user(a, org, "erin")
    _accepted_everywhere(rests, erin.token)
    sockets = _sockets(cluster, [erin.token, erin.token])
    a.call("POST", "/users/logout", erin.token)
    _refused_everywhere(rests, erin.token)
    _closed_as_revoked(cluster, sockets)


def test_revoking_sessions_and_tokens_on_a_closes_sockets_everywhere(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a = rests[0]
    fred = _new_user(a, org, "fred")
    # Two more sessions, revoked all at once by an admin through A.
    t1, t2 = _login(a, fred), _login(rests[1], fred)
    for token in (t1, t2):
        _accepted_everywhere(rests, token)
    sockets = _sockets(cluster, [t1, t2])
    a.call("POST", f"/users/{fred.id}/sessions/revoke/all", org.admin.token)
    for token in (t1, t2, fred.token):
        _refused_everywhere(rests, token)
    _closed_as_revoked(cluster, sockets)

    # One session revoked by id.
    t3, t4 = _login(a, fred, "device-t3"), _login(a, fred)
    for token in (t3, t4):
        _accepted_everywhere(rests, token)
    sessions = a.call("GET", f"/users/{fred.id}/sessions", org.admin.token)
    session_id = next(s["id"] for s in sessions if s["device_id"] == "device-t3")
    sockets = _sockets(cluster, [t3, t3])
    a.call("POST", f"/users/{fred.id}/sessions/revoke", org.admin.token, {"session_id": session_id})
    _refused_everywhere(rests, t3)
    _closed_as_revoked(cluster, sockets)
    _accepted_everywhere(rests, t4)

    # A personal access token, revoked through A.
    pat = a.call("POST", f"/users/{fred.id}/tokens", org.admin.token, {"description": "ci"}, 201)
    _accepted_everywhere(rests, pat["token"])
    sockets = _sockets(cluster, [pat["token"], pat["token"]])
    a.call("POST", "/users/tokens/revoke", org.admin.token, {"token_id": pat["id"]})
    _refused_everywhere(rests, pat["token"])
    _closed_as_revoked(cluster, sockets)


def test_thread_draft_and_emoji_events_cross_nodes(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    """Threads and drafts a user keeps on several devices reach the device on another node (and
    not the one that saved a draft); a new emoji and a new picture reach everyone everywhere."""
    a = rests[0]
    root = a.post(org.alice, org.public["id"], "a question across nodes")
    alice_b = Stream.open(cluster[1], org.alice, label="alice's phone on B")
    alice_c = Stream.open(cluster[2], org.alice, label="alice's laptop on C")
    bob_c = Stream.open(cluster[2], org.bob)
    streams = (alice_b, alice_c, bob_c)
    try:
        phone_id = alice_b.hello()["data"]["connection_id"]
        alice_c.hello()
        bob_c.hello()
        reply = a.call(
            "POST",
            "/posts",
            org.bob.token,
            {"channel_id": org.public["id"], "message": "answer", "root_id": root["id"]},
            201,
        )
        base = f"/users/{org.alice.id}/teams/{org.team['id']}/threads/{root['id']}"
        a.call("PUT", base + f"/read/{reply['create_at']}", org.alice.token)
        a.call("DELETE", base + "/following", org.alice.token)
        headers = {"Authorization": f"Bearer {org.alice.token}", "Connection-Id": phone_id}
        draft = {"channel_id": org.public["id"], "message": "from the phone"}
        for message in ("from the phone", "more from the phone"):
            resp = a.http.post("/drafts", json={**draft, "message": message}, headers=headers)
            assert resp.status_code == 201, resp.text
        resp = a.http.delete(f"/users/me/channels/{org.public['id']}/drafts", headers=headers)
        assert resp.status_code == 200, resp.text
        resp = a.http.post(
            "/emoji",
            data={"emoji": json.dumps({"name": "cross-node", "creator_id": org.alice.id})},
            files={"image": ("e.gif", _tiny_gif(), "image/gif")},
            headers={"Authorization": f"Bearer {org.alice.token}"},
        )
        assert resp.status_code == 200, resp.text
        resp = a.http.delete(
            "/users/me/image", headers={"Authorization": f"Bearer {org.alice.token}"}
        )
        assert resp.status_code == 200, resp.text
        for device in (alice_b, alice_c):
            device.expect(
                lambda m: (
                    m.get("event") == "thread_updated"
                    and json.loads(m["data"]["thread"])["id"] == root["id"]
                ),
                5,
                "thread_updated",
            )
            device.expect_event("thread_read_changed", thread_id=root["id"])
            device.expect_event("thread_follow_changed", thread_id=root["id"], state=False)
        for name in ("draft_created", "draft_updated", "draft_deleted"):
            alice_c.expect_event(name)
        for st in streams:
            st.expect(
                lambda m: (
                    m.get("event") == "emoji_added"
                    and json.loads(m["data"]["emoji"])["name"] == "cross-node"
                ),
                5,
                "emoji_added",
            )
            st.expect(
                lambda m: (
                    m.get("event") == "user_updated" and m["data"]["user"]["id"] == org.alice.id
                ),
                5,
                "user_updated",
            )
        # Everything up to the picture update has arrived: the phone saw none of its own drafts,
        # and Bob none of Alice's threads or drafts.
        assert not {e.get("event") for e in alice_b.events()} & {
            "draft_created",
            "draft_updated",
            "draft_deleted",
        }
        assert not {e.get("event") for e in bob_c.events()} & {
            "thread_read_changed",
            "thread_follow_changed",
            "draft_created",
            "draft_updated",
            "draft_deleted",
        }
    finally:
        for st in streams:
            st.close()


def _tiny_gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (4, 4), 1).save(out, "GIF")
    return out.getvalue()
