"""Sidebar categories over the API, on SQLite and PostgreSQL: the default categories, channels
placed by membership at read time, custom categories, ordering, favorites, the events, and
Mattermost's answers for other users' data and unknown categories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from hubbub.app import Hubbub
from tests.support.api import API, User


@dataclass
class Setup:
    admin: User
    user: User
    other: User
    team: dict[str, Any]
    base: str  # the user's categories URL in the team
    channel: dict[str, Any]  # a public channel the user is in
    private: dict[str, Any]  # a private channel the user is in
    dm: dict[str, Any]


@pytest.fixture
async def s(api: API, admin: User) -> Setup:
    user = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    team = await api.new_team(admin.token)
    for member in (user, other):
        await api.add_to_team(admin.token, team["id"], member.id)
    channel = await api.new_channel(admin.token, team["id"], "O", name="beta")
    private = await api.new_channel(admin.token, team["id"], "P", name="alpha")
    for c in (channel, private):
        await api.add_to_channel(admin.token, c["id"], user.id)
    dm = await api.call(
        "POST", "/channels/direct", token=user.token, json=[user.id, other.id], expect=201
    )
    base = f"/users/{user.id}/teams/{team['id']}/channels/categories"
    return Setup(admin, user, other, team, base, channel, private, dm)


async def _team_channel_ids(api: API, s: Setup) -> set[str]:
    mine = await api.call("GET", f"/users/me/teams/{s.team['id']}/channels", token=s.user.token)
    return {c["id"] for c in mine if c["type"] in ("O", "P")}


def _by_type(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in body["categories"] if c["type"] != "custom"}


async def test_default_categories(api: API, s: Setup) -> None:
    body = await api.call("GET", s.base, token=s.user.token)
    assert [c["type"] for c in body["categories"]] == ["favorites", "channels", "direct_messages"]
    assert body["order"] == [c["id"] for c in body["categories"]]
    uid, tid = s.user.id, s.team["id"]
    assert body["order"] == [
        f"favorites_{uid}_{tid}",
        f"channels_{uid}_{tid}",
        f"direct_messages_{uid}_{tid}",
    ]
    cats = _by_type(body)
    for c in body["categories"]:
        assert set(c) == {
            "id",
            "user_id",
            "team_id",
            "sort_order",
            "sorting",
            "type",
            "display_name",
            "muted",
            "collapsed",
            "channel_ids",
        }
        assert c["user_id"] == uid and c["team_id"] == tid
        assert c["muted"] is False and c["collapsed"] is False
    assert [c["display_name"] for c in body["categories"]] == [
        "Favorites",
        "Channels",
        "Direct Messages",
    ]
    assert [c["sort_order"] for c in body["categories"]] == [0, 10, 20]
    assert cats["direct_messages"]["sorting"] == "recent" and cats["channels"]["sorting"] == ""
    assert cats["favorites"]["channel_ids"] == []
    assert set(cats["channels"]["channel_ids"]) == await _team_channel_ids(api, s)
    assert {s.channel["id"], s.private["id"]} <= set(cats["channels"]["channel_ids"])
    # Ordered by display name: Alpha before Beta.
    ids = cats["channels"]["channel_ids"]
    assert ids.index(s.private["id"]) < ids.index(s.channel["id"])
    assert cats["direct_messages"]["channel_ids"] == [s.dm["id"]]

    # Reading again creates nothing twice.
    assert (
        await api.call("GET", f"/users/me/teams/{tid}/channels/categories", token=s.user.token)
        == body
    )
    assert await api.call("GET", s.base + "/order", token=s.user.token) == body["order"]
    one = await api.call("GET", s.base + f"/channels_{uid}_{tid}", token=s.user.token)
    assert one == cats["channels"]


async def test_channels_joined_later_and_other_teams(api: API, s: Setup) -> None:
    await api.call("GET", s.base, token=s.user.token)
    later = await api.new_channel(s.admin.token, s.team["id"], "O")
    await api.add_to_channel(s.admin.token, later["id"], s.user.id)
    gm_member = await api.new_user(s.admin.token)
    gm = await api.call(
        "POST",
        "/channels/group",
        token=s.user.token,
        json=[s.user.id, s.other.id, gm_member.id],
        expect=201,
    )
    cats = _by_type(await api.call("GET", s.base, token=s.user.token))
    assert later["id"] in cats["channels"]["channel_ids"]
    assert set(cats["direct_messages"]["channel_ids"]) == {s.dm["id"], gm["id"]}

    # In another team: its own channels, and the same DMs and GMs.
    team2 = await api.new_team(s.admin.token)
    await api.add_to_team(s.admin.token, team2["id"], s.user.id)
    other_cats = _by_type(
        await api.call(
            "GET", f"/users/me/teams/{team2['id']}/channels/categories", token=s.user.token
        )
    )
    assert s.channel["id"] not in other_cats["channels"]["channel_ids"]
    assert set(other_cats["direct_messages"]["channel_ids"]) == {s.dm["id"], gm["id"]}

    # Leaving a channel takes it out of the sidebar.
    await api.call("DELETE", f"/channels/{later['id']}/members/{s.user.id}", token=s.user.token)
    cats = _by_type(await api.call("GET", s.base, token=s.user.token))
    assert later["id"] not in cats["channels"]["channel_ids"]


async def test_custom_category_lifecycle(api: API, s: Setup, node: Hubbub) -> None:
    await api.call("GET", s.base, token=s.user.token)
    stranger = await api.new_channel(s.admin.token, s.team["id"], "O")  # the user is not in it
    created = await api.call(
        "POST",
        s.base,
        token=s.user.token,
        json={
            "user_id": s.user.id,
            "team_id": s.team["id"],
            "display_name": "Work",
            "channel_ids": [s.channel["id"], stranger["id"], s.dm["id"]],
        },
    )
    assert created["type"] == "custom" and created["display_name"] == "Work"
    assert len(created["id"]) == 26
    # Channels the user is not in are dropped silently.
    assert created["channel_ids"] == [s.channel["id"], s.dm["id"]]
    body = await api.call("GET", s.base, token=s.user.token)
    # Placed right after Favorites.
    assert body["order"][1] == created["id"]
    cats = _by_type(body)
    assert s.channel["id"] not in cats["channels"]["channel_ids"]
    assert s.dm["id"] not in cats["direct_messages"]["channel_ids"]
    [event] = node.events.named("sidebar_category_created")
    assert event.data == {"category_id": created["id"]}
    assert event.broadcast.user_id == s.user.id and event.broadcast.team_id == s.team["id"]

    renamed = await api.call(
        "PUT",
        s.base + f"/{created['id']}",
        token=s.user.token,
        json={**created, "display_name": "Projects", "collapsed": True, "sorting": "alpha"},
    )
    assert renamed["display_name"] == "Projects" and renamed["collapsed"] is True
    assert renamed["sorting"] == "alpha"
    [updated] = node.events.named("sidebar_category_updated")
    assert json.loads(updated.data["updatedCategories"]) == [renamed]

    assert await api.call("DELETE", s.base + f"/{created['id']}", token=s.user.token) == {
        "status": "OK"
    }
    cats = _by_type(await api.call("GET", s.base, token=s.user.token))
    # Its channels went back where they belong.
    assert s.channel["id"] in cats["channels"]["channel_ids"]
    assert s.dm["id"] in cats["direct_messages"]["channel_ids"]
    [deleted] = node.events.named("sidebar_category_deleted")
    assert deleted.data == {"category_id": created["id"]}
    gone = await api.call("GET", s.base + f"/{created['id']}", token=s.user.token, expect=403)
    assert gone["id"] == "api.context.permissions.app_error"


async def test_move_to_favorites_and_back(api: API, s: Setup) -> None:
    body = await api.call("GET", s.base, token=s.user.token)
    cats = _by_type(body)
    favorites, channels = cats["favorites"], cats["channels"]
    moved = await api.call(
        "PUT",
        s.base,
        token=s.user.token,
        json=[
            {**favorites, "channel_ids": [s.channel["id"]]},
            {
                **channels,
                "channel_ids": [c for c in channels["channel_ids"] if c != s.channel["id"]],
            },
        ],
    )
    assert [c["id"] for c in moved] == [favorites["id"], channels["id"]]
    assert moved[0]["channel_ids"] == [s.channel["id"]]
    assert s.channel["id"] not in moved[1]["channel_ids"]
    # The older favorites preference follows the category.
    pref = await api.call(
        "GET",
        f"/users/me/preferences/favorite_channel/name/{s.channel['id']}",
        token=s.user.token,
    )
    assert pref["value"] == "true"

    # Only Favorites is sent back without the channel: it returns to Channels (computed).
    back = await api.call(
        "PUT", s.base, token=s.user.token, json=[{**favorites, "channel_ids": []}]
    )
    assert back[0]["channel_ids"] == []
    cats = _by_type(await api.call("GET", s.base, token=s.user.token))
    assert s.channel["id"] in cats["channels"]["channel_ids"]
    await api.call("GET", "/users/me/preferences/favorite_channel", token=s.user.token, expect=404)


async def test_favorites_start_from_preferences(api: API, s: Setup) -> None:
    pref = {
        "user_id": s.user.id,
        "category": "favorite_channel",
        "name": s.private["id"],
        "value": "true",
    }
    await api.call("PUT", "/users/me/preferences", token=s.user.token, json=[pref])
    cats = _by_type(await api.call("GET", s.base, token=s.user.token))
    assert cats["favorites"]["channel_ids"] == [s.private["id"]]
    assert s.private["id"] not in cats["channels"]["channel_ids"]


async def test_category_order(api: API, s: Setup, node: Hubbub) -> None:
    order = (await api.call("GET", s.base, token=s.user.token))["order"]
    new_order = [order[2], order[0], order[1]]
    assert await api.call("PUT", s.base + "/order", token=s.user.token, json=new_order) == new_order
    body = await api.call("GET", s.base, token=s.user.token)
    assert body["order"] == new_order
    assert [c["sort_order"] for c in body["categories"]] == [0, 10, 20]
    [event] = node.events.named("sidebar_category_order_updated")
    assert event.data == {"order": new_order}

    short = await api.call("PUT", s.base + "/order", token=s.user.token, json=order[:2], expect=400)
    assert short["id"] == "app.channel.sidebar_categories.app_error"
    other_cats = (
        await api.call(
            "GET",
            f"/users/{s.other.id}/teams/{s.team['id']}/channels/categories",
            token=s.other.token,
        )
    )["order"]
    foreign = await api.call(
        "PUT", s.base + "/order", token=s.user.token, json=[*order[:2], other_cats[0]], expect=400
    )
    assert foreign["id"] == "api.context.invalid_param.app_error"


async def test_other_users_and_bad_input(api: API, s: Setup) -> None:
    body = await api.call("GET", s.base, token=s.user.token)
    channels_id = body["order"][1]
    cats = _by_type(body)

    # Another user's categories: 403 for users, allowed for a system admin.
    denied = await api.call("GET", s.base, token=s.other.token, expect=403)
    assert denied["id"] == "api.context.permissions.app_error"
    await api.call("GET", s.base + "/order", token=s.other.token, expect=403)
    await api.call("GET", s.base + f"/{channels_id}", token=s.other.token, expect=403)
    assert (await api.call("GET", s.base, token=s.admin.token))["order"] == body["order"]

    # Their own path, someone else's category id.
    own = f"/users/{s.other.id}/teams/{s.team['id']}/channels/categories"
    mixed = await api.call("GET", own + f"/{channels_id}", token=s.other.token, expect=403)
    assert mixed["id"] == "api.context.permissions.app_error"
    await api.call("DELETE", own + f"/{channels_id}", token=s.other.token, expect=403)
    bulk = await api.call("PUT", own, token=s.other.token, json=[cats["channels"]], expect=400)
    assert bulk["id"] == "api.context.invalid_param.app_error"

    # Unknown categories: 403 for a user (as Mattermost), 404 for an admin.
    unknown = "a" * 26
    await api.call("GET", s.base + f"/{unknown}", token=s.user.token, expect=403)
    missing = await api.call("GET", s.base + f"/{unknown}", token=s.admin.token, expect=404)
    assert missing["id"] == "app.channel.sidebar_categories.app_error"
    bad_id = await api.call("GET", s.base + "/not-a-category", token=s.user.token, expect=400)
    assert bad_id["id"] == "api.context.invalid_param.app_error"
    await api.call(
        "GET", "/users/me/teams/nope/channels/categories", token=s.user.token, expect=400
    )

    # Default categories cannot be deleted; a body for another user or team is refused.
    undeletable = await api.call(
        "DELETE", s.base + f"/{channels_id}", token=s.user.token, expect=400
    )
    assert undeletable["id"] == "app.channel.sidebar_categories.app_error"
    wrong_owner = await api.call(
        "POST",
        s.base,
        token=s.user.token,
        json={"user_id": s.other.id, "team_id": s.team["id"], "display_name": "X"},
        expect=400,
    )
    assert wrong_owner["id"] == "api.context.invalid_param.app_error"
    nameless = await api.call(
        "POST",
        s.base,
        token=s.user.token,
        json={"user_id": s.user.id, "team_id": s.team["id"], "display_name": " "},
        expect=400,
    )
    assert nameless["id"] == "api.context.invalid_param.app_error"
    await api.call("GET", s.base, expect=401)


async def test_a_team_the_user_is_not_in(api: API, s: Setup) -> None:
    team2 = await api.new_team(s.admin.token)
    base = f"/users/me/teams/{team2['id']}/channels/categories"
    assert await api.call("GET", base, token=s.user.token) == {"categories": [], "order": []}
    refused = await api.call(
        "POST",
        base,
        token=s.user.token,
        json={"user_id": s.user.id, "team_id": team2["id"], "display_name": "X"},
        expect=404,
    )
    assert refused["id"] == "app.channel.sidebar_categories.app_error"


async def test_dm_category_keeps_its_channels(api: API, s: Setup) -> None:
    cats = _by_type(await api.call("GET", s.base, token=s.user.token))
    dms = cats["direct_messages"]
    [updated] = await api.call(
        "PUT",
        s.base,
        token=s.user.token,
        json=[{**dms, "channel_ids": [], "muted": True, "collapsed": True, "display_name": "X"}],
    )
    # Channels, muting and the name of a default category are not the client's to change.
    assert updated["channel_ids"] == [s.dm["id"]]
    assert updated["muted"] is False and updated["display_name"] == "Direct Messages"
    assert updated["collapsed"] is True
