"""The events of threads, drafts, custom emoji and avatars over real websockets: a draft saved on
one device reaches the user's other device and not the one that saved it; `thread_updated`,
`thread_read_changed` and `thread_follow_changed` reach every connection of the user; `emoji_added`
and the `user_updated` of a new picture reach everyone.

Each check ends with a marker post read by every socket involved, so "not delivered" is tested
against a point every socket has reached, not against a timeout.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.ws import RawWS, hello_of, read_until_post


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    return keepalive_settings(25, 60)


def _named(messages: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("event") == event]


def _drain(sockets: list[RawWS], rest: Rest, org: Org) -> list[list[dict[str, Any]]]:
    marker = rest.post(org.admin, org.public["id"], "marker")
    seen: list[list[dict[str, Any]]] = []
    for ws in sockets:
        messages: list[dict[str, Any]] = []
        read_until_post(ws, marker["id"], seen=messages)
        seen.append(messages)
    return seen


def test_a_draft_reaches_the_other_device_only(live_node: Node, rest: Rest, org: Org) -> None:
    phone, laptop, bob = (
        live_node.connect(org.alice),
        live_node.connect(org.alice),
        live_node.connect(org.bob),
    )
    try:
        phone_id = hello_of(phone)["data"]["connection_id"]
        hello_of(laptop)
        hello_of(bob)
        draft = {"channel_id": org.private["id"], "message": "typed on the phone"}
        headers = {"Authorization": f"Bearer {org.alice.token}", "Connection-Id": phone_id}
        for message in ("typed on the phone", "typed more on the phone"):
            resp = rest.http.post("/drafts", json={**draft, "message": message}, headers=headers)
            assert resp.status_code == 201, resp.text
        resp = rest.http.delete(f"/users/me/channels/{org.private['id']}/drafts", headers=headers)
        assert resp.status_code == 200, resp.text
        on_phone, on_laptop, on_bob = _drain([phone, laptop, bob], rest, org)
        names = [m["event"] for m in on_laptop if m["event"].startswith("draft_")]
        assert names == ["draft_created", "draft_updated", "draft_deleted"]
        created = json.loads(_named(on_laptop, "draft_created")[0]["data"]["draft"])
        assert created["message"] == "typed on the phone"
        assert created["user_id"] == org.alice.id
        assert not [m for m in on_phone if m["event"].startswith("draft_")]
        assert not [m for m in on_bob if m["event"].startswith("draft_")]
    finally:
        for ws in (phone, laptop, bob):
            ws.close()


def test_thread_events_reach_every_connection_of_the_follower(
    live_node: Node, rest: Rest, org: Org
) -> None:
    root = rest.post(org.alice, org.private["id"], "a question")
    phone, laptop, carol = (
        live_node.connect(org.alice),
        live_node.connect(org.alice),
        live_node.connect(org.carol),
    )
    try:
        for ws in (phone, laptop, carol):
            hello_of(ws)
        reply = rest.call(
            "POST",
            "/posts",
            org.bob.token,
            {"channel_id": org.private["id"], "message": "an answer", "root_id": root["id"]},
            201,
        )
        base = f"/users/{org.alice.id}/teams/{org.team['id']}/threads/{root['id']}"
        rest.call("PUT", base + f"/read/{reply['create_at']}", org.alice.token)
        rest.call("DELETE", base + "/following", org.alice.token)
        on_phone, on_laptop, on_carol = _drain([phone, laptop, carol], rest, org)
        for seen in (on_phone, on_laptop):
            [updated] = _named(seen, "thread_updated")
            assert updated["broadcast"]["team_id"] == org.team["id"]
            thread = json.loads(updated["data"]["thread"])
            assert (thread["id"], thread["reply_count"], thread["unread_replies"]) == (
                root["id"],
                1,
                1,
            )
            assert thread["participants"][0]["id"] == org.bob.id
            [read] = _named(seen, "thread_read_changed")
            assert read["data"]["thread_id"] == root["id"]
            assert read["data"]["unread_replies"] == 0
            [follow] = _named(seen, "thread_follow_changed")
            assert follow["data"] == {"thread_id": root["id"], "state": False, "reply_count": 1}
        assert not [m for m in on_carol if m["event"].startswith("thread_")]
    finally:
        for ws in (phone, laptop, carol):
            ws.close()


def test_new_emoji_and_pictures_reach_everyone(live_node: Node, rest: Rest, org: Org) -> None:
    alice, bob = live_node.connect(org.alice), live_node.connect(org.bob)
    try:
        for ws in (alice, bob):
            hello_of(ws)
        image = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(image, "PNG")
        headers = {"Authorization": f"Bearer {org.alice.token}"}
        name = f"wave{org.alice.id[:6]}"
        resp = rest.http.post(
            "/emoji",
            data={"emoji": json.dumps({"name": name, "creator_id": org.alice.id})},
            files={"image": ("w.png", image.getvalue(), "image/png")},
            headers=headers,
        )
        assert resp.status_code == 200, resp.text
        resp = rest.http.post(
            "/users/me/image",
            files={"image": ("me.png", image.getvalue(), "image/png")},
            headers=headers,
        )
        assert resp.status_code == 200, resp.text
        for seen in _drain([alice, bob], rest, org):
            [added] = _named(seen, "emoji_added")
            assert json.loads(added["data"]["emoji"])["name"] == name
            pictures = [
                m for m in _named(seen, "user_updated") if m["data"]["user"]["id"] == org.alice.id
            ]
            assert pictures and pictures[-1]["data"]["user"]["last_picture_update"] > 0
    finally:
        alice.close()
        bob.close()
