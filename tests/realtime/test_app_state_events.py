"""The events of the apps' own state reach every connection of the user they belong to (another
device), and nobody else: preferences, sidebar categories; `role_updated` reaches everyone.

Each check ends with a marker post read by every socket involved, so "nobody else" is tested
against a point every socket has reached, not against a timeout.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.ws import RawWS, hello_of, read_until_post


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    # The tests pause reading while they call REST: keep the server's pings patient.
    return keepalive_settings(25, 60)


def _named(messages: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("event") == event]


def _drain_to_marker(sockets: list[RawWS], rest: Rest, org: Org) -> list[list[dict[str, Any]]]:
    """Posts a marker in the public channel (everyone is in it) and reads each socket up to it;
    returns what each socket saw on the way."""
    marker = rest.post(org.admin, org.public["id"], "marker")
    seen: list[list[dict[str, Any]]] = []
    for ws in sockets:
        messages: list[dict[str, Any]] = []
        read_until_post(ws, marker["id"], seen=messages)
        seen.append(messages)
    return seen


def test_preferences_reach_the_users_other_connections(
    live_node: Node, rest: Rest, org: Org
) -> None:
    phone, laptop, bob = (
        live_node.connect(org.alice),
        live_node.connect(org.alice),
        live_node.connect(org.bob),
    )
    try:
        for ws in (phone, laptop, bob):
            hello_of(ws)
        pref = {
            "user_id": org.alice.id,
            "category": "display_settings",
            "name": "use_military_time",
            "value": "true",
        }
        rest.call("PUT", "/users/me/preferences", org.alice.token, [pref])
        rest.call("POST", "/users/me/preferences/delete", org.alice.token, [pref])
        on_phone, on_laptop, on_bob = _drain_to_marker([phone, laptop, bob], rest, org)
        for seen in (on_phone, on_laptop):
            [changed] = _named(seen, "preferences_changed")
            assert changed["broadcast"]["user_id"] == org.alice.id
            assert isinstance(changed["data"]["preferences"], str)  # JSON in JSON
            assert json.loads(changed["data"]["preferences"]) == [pref]
            [deleted] = _named(seen, "preferences_deleted")
            assert json.loads(deleted["data"]["preferences"]) == [pref]
        assert not _named(on_bob, "preferences_changed")
        assert not _named(on_bob, "preferences_deleted")
    finally:
        for ws in (phone, laptop, bob):
            ws.close()


def test_sidebar_events_reach_the_users_other_connections(
    live_node: Node, rest: Rest, org: Org
) -> None:
    base = f"/users/{org.alice.id}/teams/{org.team['id']}/channels/categories"
    rest.call("GET", base, org.alice.token)
    phone, laptop, bob = (
        live_node.connect(org.alice),
        live_node.connect(org.alice),
        live_node.connect(org.bob),
    )
    try:
        for ws in (phone, laptop, bob):
            hello_of(ws)
        created = rest.call(
            "POST",
            base,
            org.alice.token,
            {
                "user_id": org.alice.id,
                "team_id": org.team["id"],
                "display_name": "Later",
                "channel_ids": [org.private["id"]],
            },
        )
        updated = rest.call(
            "PUT", base + f"/{created['id']}", org.alice.token, {**created, "collapsed": True}
        )
        order = rest.call("GET", base + "/order", org.alice.token)
        rest.call("PUT", base + "/order", org.alice.token, list(reversed(order)))
        rest.call("DELETE", base + f"/{created['id']}", org.alice.token)
        on_phone, on_laptop, on_bob = _drain_to_marker([phone, laptop, bob], rest, org)
        for seen in (on_phone, on_laptop):
            names = [
                m["event"] for m in seen if str(m.get("event", "")).startswith("sidebar_category")
            ]
            assert names == [
                "sidebar_category_created",
                "sidebar_category_updated",
                "sidebar_category_order_updated",
                "sidebar_category_deleted",
            ]
            [created_event] = _named(seen, "sidebar_category_created")
            assert created_event["data"] == {"category_id": created["id"]}
            assert created_event["broadcast"]["team_id"] == org.team["id"]
            [updated_event] = _named(seen, "sidebar_category_updated")
            assert json.loads(updated_event["data"]["updatedCategories"]) == [updated]
            [order_event] = _named(seen, "sidebar_category_order_updated")
            assert order_event["data"]["order"] == list(reversed(order))
        assert not [m for m in on_bob if str(m.get("event", "")).startswith("sidebar_category")]
    finally:
        for ws in (phone, laptop, bob):
            ws.close()


def test_role_updated_reaches_everyone(live_node: Node, rest: Rest, org: Org) -> None:
    role = rest.call("GET", "/roles/name/team_post_all_public", org.admin.token)
    alice, bob = live_node.connect(org.alice), live_node.connect(org.bob)
    try:
        for ws in (alice, bob):
            hello_of(ws)
        patched = rest.call(
            "PUT",
            f"/roles/{role['id']}/patch",
            org.admin.token,
            {"permissions": ["create_post_public"]},
        )
        for seen in _drain_to_marker([alice, bob], rest, org):
            [event] = _named(seen, "role_updated")
            assert json.loads(event["data"]["role"]) == patched
    finally:
        rest.call("PUT", f"/roles/{role['id']}/patch", org.admin.token, role)
        alice.close()
        bob.close()
