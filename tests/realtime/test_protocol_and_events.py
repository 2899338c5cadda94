"""The websocket protocol as Mattermost clients rely on it, and the events of the basic flow.

Reference: shared/reference/mattermost-api-and-clients.md §0 (traps 4-6) and §4. Posts are made
over REST by another user; the websocket must deliver them with Mattermost's shapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.ws import RawWS, hello_of

ID = re.compile(r"^[a-z0-9]{26}$")


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    # Mattermost-like keep-alive: these tests pause reading while they post over REST.
    return keepalive_settings(25, 60)


def _posted_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [json.loads(m["data"]["post"])["id"] for m in messages if m.get("event") == "posted"]


def _until_post(ws: RawWS, post_id: str, seen: list[dict[str, Any]], timeout: float = 5) -> None:
    ws.wait_event(
        lambda m: m.get("event") == "posted" and json.loads(m["data"]["post"])["id"] == post_id,
        timeout,
        f"posted {post_id}",
        seen,
    )


def test_hello_comes_first_with_seq_0_and_a_connection_id(live_node: Node, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello = hello_of(ws)
        assert ID.match(hello["data"]["connection_id"]), hello
        assert hello["data"]["server_version"], hello
        assert hello["broadcast"]["user_id"] == org.alice.id, hello
    finally:
        ws.close()


def test_each_connection_gets_its_own_connection_id(live_node: Node, org: Org) -> None:
    a, b = live_node.connect(org.alice), live_node.connect(org.alice)
    try:
        assert hello_of(a)["data"]["connection_id"] != hello_of(b)["data"]["connection_id"]
    finally:
        a.close()
        b.close()


def test_seq_is_gap_free_over_many_events(live_node: Node, rest: Rest, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        posts = [rest.post(org.bob, org.public["id"], f"burst {i}")["id"] for i in range(40)]
        seen: list[dict[str, Any]] = []
        _until_post(ws, posts[-1], seen, timeout=10)
        events = [m for m in seen if "seq_reply" not in m]
        assert [m["seq"] for m in events] == list(range(1, len(events) + 1))
        assert _posted_ids(events) == posts
    finally:
        ws.close()


def test_ping_action_reply_has_seq_reply_and_no_seq(live_node: Node, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        answer = ws.request(1, "ping")
        assert answer["status"] == "OK", answer
        assert answer["seq_reply"] == 1
        assert "seq" not in answer, answer
        data = answer["data"]
        assert data["text"] == "pong", data
        assert isinstance(data["server_time"], int) and data["server_time"] > 1_600_000_000_000
        assert data["version"] and "node_id" in data
    finally:
        ws.close()


def test_unknown_action_gets_an_error_reply_and_the_socket_stays(live_node: Node, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        answer = ws.request(3, "no_such_action")
        assert answer["status"] == "FAIL", answer
        assert answer["error"]["id"], answer
        assert "seq" not in answer
        assert ws.request(4, "ping")["data"]["text"] == "pong"
    finally:
        ws.close()


def test_malformed_requests_get_error_replies(live_node: Node, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        ws.send_json({"seq": 5, "data": {}})  # no action
        no_action = ws.wait_event(lambda m: "event" not in m, 5, "an error reply (no action)")
        assert no_action["status"] == "FAIL" and no_action["error"]["id"], no_action
        assert "seq" not in no_action
        ws.send_json({"seq": 0, "action": "ping"})  # requests are numbered from 1
        bad_seq = ws.wait_event(lambda m: "event" not in m, 5, "an error reply (seq 0)")
        assert bad_seq["status"] == "FAIL" and bad_seq["error"]["id"], bad_seq
        assert ws.request(6, "ping")["data"]["text"] == "pong"
    finally:
        ws.close()


def test_challenge_on_an_authenticated_socket_is_ignored(live_node: Node, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        ws.send_json(
            {"seq": 2, "action": "authentication_challenge", "data": {"token": org.alice.token}}
        )
        ws.send_json({"seq": 3, "action": "ping"})
        seen: list[dict[str, Any]] = []
        ws.wait_event(lambda m: "seq_reply" in m, 5, "the ping reply", seen)
        assert seen[-1]["seq_reply"] == 3, f"the challenge was answered: {seen}"
        assert not [m for m in seen if m.get("event") == "hello"], f"a second hello: {seen}"
    finally:
        ws.close()


def test_challenge_authenticates_a_bare_socket(live_node: Node, org: Org) -> None:
    ws = live_node.connect()
    try:
        ws.send_json(
            {"seq": 1, "action": "authentication_challenge", "data": {"token": org.bob.token}}
        )
        got: list[dict[str, Any]] = []
        ws.wait_event(
            lambda m: any("seq_reply" in g for g in got) and any("event" in g for g in got),
            5,
            "hello and the challenge reply",
            got,
        )
        hello = next(m for m in got if "event" in m)
        assert hello["event"] == "hello", f"the first event is not hello: {got}"
        ok = next(m for m in got if "seq_reply" in m)
        assert hello["seq"] == 0 and hello["broadcast"]["user_id"] == org.bob.id
        assert ok == {"status": "OK", "seq_reply": 1}, ok
    finally:
        ws.close()


def test_unauthenticated_request_gets_a_401_reply(live_node: Node) -> None:
    ws = live_node.connect()
    try:
        answer = ws.request(1, "ping")
        assert answer["status"] == "FAIL" and answer["error"]["status_code"] == 401, answer
    finally:
        ws.close()


def test_posted_event_has_mattermost_shape(live_node: Node, rest: Rest, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        post = rest.post(org.bob, org.public["id"], f"hello @{org.carol.username} there")
        seen: list[dict[str, Any]] = []
        _until_post(ws, post["id"], seen)
        event = seen[-1]
        data = event["data"]
        assert isinstance(data["post"], str), "data.post must be a JSON string"
        inner = json.loads(data["post"])
        assert inner["id"] == post["id"] and inner["user_id"] == org.bob.id
        assert inner["channel_id"] == org.public["id"]
        assert inner["message"] == post["message"]
        assert data["channel_type"] == "O"
        assert data["channel_name"] == org.public["name"]
        assert data["channel_display_name"] == org.public["display_name"]
        assert data["sender_name"] == "@" + org.bob.username
        assert data["team_id"] == org.team["id"]
        assert isinstance(data["mentions"], str), "data.mentions must be a JSON string"
        assert json.loads(data["mentions"]) == [org.carol.id]
        assert event["broadcast"]["channel_id"] == org.public["id"]
        assert isinstance(event["seq"], int)
    finally:
        ws.close()


def test_post_without_mentions_has_no_mentions_field(live_node: Node, rest: Rest, org: Org) -> None:
    ws = live_node.connect(org.alice)
    try:
        hello_of(ws)
        post = rest.post(org.bob, org.public["id"], "nobody mentioned")
        seen: list[dict[str, Any]] = []
        _until_post(ws, post["id"], seen)
        mentions = seen[-1]["data"].get("mentions")
        assert mentions is None or json.loads(mentions) == [], mentions
    finally:
        ws.close()


def test_private_channel_events_reach_members_only(live_node: Node, rest: Rest, org: Org) -> None:
    member, outsider = live_node.connect(org.alice), live_node.connect(org.carol)
    try:
        hello_of(member)
        hello_of(outsider)
        secret = rest.post(org.bob, org.private["id"], "members only")
        sentinel = rest.post(org.bob, org.public["id"], "for everyone")
        seen_member: list[dict[str, Any]] = []
        _until_post(member, sentinel["id"], seen_member)
        assert _posted_ids(seen_member) == [secret["id"], sentinel["id"]]
        first = next(m for m in seen_member if m.get("event") == "posted")
        assert first["data"]["channel_type"] == "P"
        seen_outsider: list[dict[str, Any]] = []
        _until_post(outsider, sentinel["id"], seen_outsider)
        assert _posted_ids(seen_outsider) == [sentinel["id"]], "a non-member got a private post"
        assert not any(
            m.get("broadcast", {}).get("channel_id") == org.private["id"] for m in seen_outsider
        )
    finally:
        member.close()
        outsider.close()


def test_typing_reaches_other_members_but_not_the_sender(
    live_node: Node, rest: Rest, org: Org
) -> None:
    typer, other, outsider = (live_node.connect(a) for a in (org.alice, org.bob, org.carol))
    try:
        for ws in (typer, other, outsider):
            hello_of(ws)
        answer = typer.request(2, "user_typing", {"channel_id": org.private["id"], "parent_id": ""})
        assert answer["status"] == "OK", answer
        typing = other.wait_event(lambda m: m.get("event") == "typing", 5, "typing")
        assert typing["data"]["user_id"] == org.alice.id
        assert typing["data"]["parent_id"] == ""
        assert typing["broadcast"]["channel_id"] == org.private["id"]
        sentinel = rest.post(org.admin, org.public["id"], "after typing")
        for ws in (typer, outsider):
            seen: list[dict[str, Any]] = []
            _until_post(ws, sentinel["id"], seen)
            assert not [m for m in seen if m.get("event") == "typing"], seen
    finally:
        for ws in (typer, other, outsider):
            ws.close()


def test_typing_in_a_channel_one_is_not_in_is_refused(live_node: Node, org: Org) -> None:
    ws = live_node.connect(org.carol)
    try:
        hello_of(ws)
        answer = ws.request(2, "user_typing", {"channel_id": org.private["id"], "parent_id": ""})
        assert answer["status"] == "FAIL", answer
    finally:
        ws.close()
