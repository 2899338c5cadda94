"""Channels and channel members over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

from hubbub.app import Hubbub
from hubbub.errors import AppError
from hubbub.services.session import Session
from tests.support.api import API, User

CHANNEL_KEYS = {
    "id",
    "create_at",
    "update_at",
    "delete_at",
    "team_id",
    "type",
    "display_name",
    "name",
    "header",
    "purpose",
    "last_post_at",
    "total_msg_count",
    "extra_update_at",
    "creator_id",
    "scheme_id",
    "props",
    "group_constrained",
    "shared",
    "total_msg_count_root",
    "policy_id",
    "last_root_post_at",
}
MEMBER_KEYS = {
    "channel_id",
    "user_id",
    "roles",
    "last_viewed_at",
    "msg_count",
    "mention_count",
    "mention_count_root",
    "urgent_mention_count",
    "msg_count_root",
    "notify_props",
    "last_update_at",
    "scheme_guest",
    "scheme_user",
    "scheme_admin",
    "explicit_roles",
}
PERMISSION = "api.context.permissions.app_error"


@dataclass
class World:
    admin: User
    alice: User  # team member, creates channels
    bob: User  # team member
    carol: User  # not in the team
    team: dict[str, Any]


@pytest.fixture
async def world(api: API, admin: User) -> World:
    users = [await api.new_user(admin.token) for _ in range(3)]
    alice, bob, carol = users
    team = await api.new_team(admin.token)
    for u in (alice, bob):
        await api.add_to_team(admin.token, team["id"], u.id)
    return World(admin, alice, bob, carol, team)


def session_of(user: User, roles: str = "system_user") -> Session:
    return Session(
        id="s" * 26, token=user.token, user_id=user.id, roles=roles, csrf_token="", expires_at=0
    )


async def member_version(node: Hubbub, channel_id: str) -> int:
    return int((await node.channel_access.get_row(channel_id)).member_version)


async def test_create_channel_shape_membership_and_event(
    api: API, world: World, node: Hubbub
) -> None:
    ch = await api.call(
        "POST",
        "/channels",
        token=world.alice.token,
        json={
            "team_id": world.team["id"],
            "name": "my_chan-1",
            "display_name": "My Chan",
            "type": "O",
            "purpose": "p",
            "header": "h",
        },
        expect=201,
    )
    assert set(ch) == CHANNEL_KEYS
    assert (ch["type"], ch["name"], ch["team_id"]) == ("O", "my_chan-1", world.team["id"])
    assert ch["creator_id"] == world.alice.id and ch["header"] == "h" and ch["purpose"] == "p"
    member = await api.call("GET", f"/channels/{ch['id']}/members/me", token=world.alice.token)
    assert set(member) == MEMBER_KEYS
    assert member["roles"] == "channel_user channel_admin"
    assert member["notify_props"]["mark_unread"] == "all"
    created = node.events.named("channel_created")[-1]
    assert created.data == {"channel_id": ch["id"], "team_id": world.team["id"]}
    assert created.broadcast.user_id == world.alice.id
    dup = await api.call(
        "POST",
        "/channels",
        token=world.bob.token,
        json={"team_id": world.team["id"], "name": "my_chan-1", "display_name": "X", "type": "P"},
        expect=400,
    )
    assert dup["id"] == "store.sql_channel.save_channel.exists.app_error"
    one_char = await api.new_channel(world.bob.token, world.team["id"], name="z")
    assert one_char["name"] == "z"


BAD_CHANNELS: list[tuple[dict[str, Any], int, str]] = [
    ({"name": "Upper"}, 400, "model.channel.is_valid.1_or_more.app_error"),
    ({"name": "-dash"}, 400, "model.channel.is_valid.1_or_more.app_error"),
    ({"name": "sp ace"}, 400, "model.channel.is_valid.1_or_more.app_error"),
    ({"name": ""}, 400, "model.channel.is_valid.1_or_more.app_error"),
    ({"name": "x" * 65}, 400, "model.channel.is_valid.name.app_error"),
    ({"display_name": ""}, 400, "model.channel.is_valid.display_name.app_error"),
    ({"type": "D"}, 400, "api.channel.create_channel.direct_channel.app_error"),
    ({"type": "Q"}, 400, "model.channel.is_valid.type.app_error"),
    ({"team_id": "bad"}, 400, "api.context.invalid_param.app_error"),
    ({"team_id": "t" * 26}, 404, "app.team.get.find.app_error"),
    ({"name": 12}, 400, "api.context.invalid_body_param.app_error"),
    ({"display_name": "nul\u0000"}, 400, "api.context.invalid_body_param.app_error"),
]


async def test_create_channel_bad_input(api: API, world: World) -> None:
    for payload, status, error_id in BAD_CHANNELS:
        body = {
            "team_id": world.team["id"],
            "name": "good",
            "display_name": "Good",
            "type": "O",
            **payload,
        }
        resp = await api.call(
            "POST", "/channels", token=world.alice.token, json=body, expect=status
        )
        assert resp["id"] == error_id, payload


async def test_create_channel_needs_team_membership_and_valid_json(api: API, world: World) -> None:
    body = {"team_id": world.team["id"], "name": "c1", "display_name": "C", "type": "O"}
    denied = await api.call("POST", "/channels", token=world.carol.token, json=body, expect=403)
    assert denied["id"] == PERMISSION
    await api.call("POST", "/channels", token=world.admin.token, json=body, expect=201)
    resp = await api.raw("POST", "/channels", token=world.alice.token, content=b"{]")
    assert resp.status_code == 400
    assert resp.json()["id"] == "api.context.invalid_body_param.app_error"
    await api.call("POST", "/channels", json=body, expect=401)


async def test_direct_channel_naming_idempotency_and_access(
    api: API, world: World, node: Hubbub
) -> None:
    a, b = world.alice, world.carol
    dm = await api.call("POST", "/channels/direct", token=a.token, json=[a.id, b.id], expect=201)
    low, high = sorted([a.id, b.id])
    assert dm["name"] == f"{low}__{high}"
    assert (dm["type"], dm["team_id"], dm["display_name"]) == ("D", "", "")
    again = await api.call("POST", "/channels/direct", token=b.token, json=[a.id, b.id], expect=201)
    assert again["id"] == dm["id"]
    reverse = await api.call(
        "POST", "/channels/direct", token=a.token, json=[b.id, a.id], expect=201
    )
    assert reverse["id"] == dm["id"]
    added = [e for e in node.events.named("direct_added") if e.broadcast.channel_id == dm["id"]]
    assert [e.data for e in added] == [{"creator_id": a.id, "teammate_id": b.id}]
    members = await api.call("GET", f"/channels/{dm['id']}/members", token=b.token)
    assert {m["user_id"] for m in members} == {a.id, b.id}
    # Someone else cannot read the DM, its members, or open a DM between others.
    bob = world.bob
    for path in (f"/channels/{dm['id']}", f"/channels/{dm['id']}/members"):
        body = await api.call("GET", path, token=bob.token, expect=403)
        assert body["id"] == PERMISSION, path
    await api.call("POST", "/channels/direct", token=bob.token, json=[a.id, b.id], expect=403)
    await api.call("GET", f"/channels/{dm['id']}", token=world.admin.token)
    # A DM with yourself has one member.
    me = await api.call("POST", "/channels/direct", token=a.token, json=[a.id, a.id], expect=201)
    assert me["name"] == f"{a.id}__{a.id}"
    assert [
        m["user_id"] for m in await api.call("GET", f"/channels/{me['id']}/members", token=a.token)
    ] == [a.id]
    for payload, status in (
        ([a.id], 400),
        ([a.id, b.id, bob.id], 400),
        ([a.id, "bad"], 400),
        ([a.id, "n" * 26], 400),
        ({"a": 1}, 400),
    ):
        await api.call("POST", "/channels/direct", token=a.token, json=payload, expect=status)
    # The two users' channel lists show the DM in any team context.
    listed = await api.call("GET", f"/users/me/teams/{world.team['id']}/channels", token=a.token)
    assert dm["id"] in {c["id"] for c in listed}


async def test_group_channel_naming_idempotency_and_sizes(
    api: API, world: World, node: Hubbub
) -> None:
    a, b, c = world.alice, world.bob, world.carol
    gm = await api.call("POST", "/channels/group", token=a.token, json=[b.id, c.id], expect=201)
    ids = sorted([a.id, b.id, c.id])
    assert gm["name"] == hashlib.sha1("".join(ids).encode()).hexdigest()
    assert gm["type"] == "G" and gm["team_id"] == ""
    assert gm["display_name"] == ", ".join(sorted([a.username, b.username, c.username]))
    again = await api.call(
        "POST", "/channels/group", token=c.token, json=[c.id, a.id, b.id], expect=201
    )
    assert again["id"] == gm["id"]
    events = [e for e in node.events.named("group_added") if e.broadcast.channel_id == gm["id"]]
    assert len(events) == 1 and sorted(json.loads(events[0].data["teammate_ids"])) == ids
    assert sorted(await node.channel_access.member_user_ids(gm["id"])) == ids
    small = await api.call("POST", "/channels/group", token=a.token, json=[b.id], expect=400)
    assert small["id"] == "api.channel.create_group.bad_size.app_error"
    ghost = await api.call(
        "POST", "/channels/group", token=a.token, json=[b.id, "g" * 26], expect=400
    )
    assert ghost["id"] == "api.channel.create_group.bad_user.app_error"
    await api.call("POST", "/channels/group", token=a.token, json=[b.id, "x"], expect=400)
    outsider = await api.new_user(world.admin.token)
    await api.call("GET", f"/channels/{gm['id']}", token=outsider.token, expect=403)
    added = await api.call(
        "POST",
        f"/channels/{gm['id']}/members",
        token=a.token,
        json={"user_id": outsider.id},
        expect=400,
    )
    assert added["id"] == "api.channel.add_user_to_channel.type.app_error"


async def test_read_permissions(api: API, world: World) -> None:
    public = await api.new_channel(world.alice.token, world.team["id"])
    private = await api.new_channel(world.alice.token, world.team["id"], type_="P")
    assert (await api.call("GET", f"/channels/{public['id']}", token=world.bob.token))["id"]
    for path in (
        f"/channels/{private['id']}",
        f"/channels/{private['id']}/members",
        f"/channels/{private['id']}/members/{world.alice.id}",
        f"/channels/{private['id']}/stats",
        f"/channels/{public['id']}",  # carol is not in the team
    ):
        user = world.carol if public["id"] in path else world.bob
        body = await api.call("GET", path, token=user.token, expect=403)
        assert body["id"] == PERMISSION, path
    ids_body = await api.call(
        "POST",
        f"/channels/{private['id']}/members/ids",
        token=world.bob.token,
        json=[world.alice.id],
        expect=403,
    )
    assert ids_body["id"] == PERMISSION
    await api.call("GET", f"/channels/{private['id']}", token=world.admin.token)
    unknown = await api.call("GET", "/channels/" + "c" * 26, token=world.bob.token, expect=404)
    assert unknown["id"] == "app.channel.get.existing.app_error"
    bad = await api.call("GET", "/channels/short", token=world.bob.token, expect=400)
    assert bad["id"] == "api.context.invalid_param.app_error"
    listing = await api.call(
        "GET", f"/teams/{world.team['id']}/channels", token=world.carol.token, expect=403
    )
    assert listing["id"] == PERMISSION
    await api.call(
        "GET", f"/teams/{world.team['id']}/channels/deleted", token=world.carol.token, expect=403
    )


async def test_team_channel_lists_and_lookups(api: API, world: World) -> None:
    team_id = world.team["id"]
    public = await api.new_channel(world.alice.token, team_id, name="engineering")
    private = await api.new_channel(world.alice.token, team_id, type_="P", name="secret")
    listed = await api.call("GET", f"/teams/{team_id}/channels", token=world.bob.token)
    names = {c["name"] for c in listed}
    assert {"town-square", "off-topic", "engineering"} <= names and "secret" not in names
    one = await api.call(
        "GET", f"/teams/{team_id}/channels?per_page=1&page=1", token=world.bob.token
    )
    assert len(one) == 1
    found = await api.call(
        "POST", f"/teams/{team_id}/channels/search", token=world.bob.token, json={"term": "eng"}
    )
    assert [c["id"] for c in found] == [public["id"]]
    none = await api.call(
        "POST", f"/teams/{team_id}/channels/search", token=world.bob.token, json={"term": "secr"}
    )
    assert none == []
    for bad_search in ({}, {"term": "a\u0000"}):
        await api.call(
            "POST",
            f"/teams/{team_id}/channels/search",
            token=world.bob.token,
            json=bad_search,
            expect=400,
        )
    await api.call(
        "GET", f"/teams/{team_id}/channels/name/a%00b", token=world.bob.token, expect=400
    )
    by_ids = await api.call(
        "POST",
        f"/teams/{team_id}/channels/ids",
        token=world.bob.token,
        json=[public["id"], private["id"]],
    )
    assert [c["id"] for c in by_ids] == [public["id"]]
    by_name = await api.call(
        "GET", f"/teams/{team_id}/channels/name/engineering", token=world.bob.token
    )
    assert by_name["id"] == public["id"]
    hidden = await api.call(
        "GET", f"/teams/{team_id}/channels/name/secret", token=world.bob.token, expect=404
    )
    assert hidden["id"] == "app.channel.get_by_name.missing.app_error"
    mine = await api.call("GET", f"/teams/{team_id}/channels/name/secret", token=world.alice.token)
    assert mine["id"] == private["id"]
    by_team_name = await api.call(
        "GET",
        f"/teams/name/{world.team['name']}/channels/name/engineering",
        token=world.bob.token,
    )
    assert by_team_name["id"] == public["id"]
    await api.call(
        "GET", "/teams/name/nosuchteam/channels/name/engineering", token=world.bob.token, expect=404
    )


async def test_add_and_remove_members(api: API, world: World, node: Hubbub) -> None:
    alice, bob, carol = world.alice, world.bob, world.carol
    public = await api.new_channel(alice.token, world.team["id"])
    private = await api.new_channel(alice.token, world.team["id"], type_="P")
    version = await member_version(node, public["id"])
    # Anyone in the team may join a public channel.
    joined = await api.add_to_channel(bob.token, public["id"], bob.id)
    assert joined["user_id"] == bob.id and joined["roles"] == "channel_user"
    assert await member_version(node, public["id"]) == version + 1
    again = await api.add_to_channel(bob.token, public["id"], bob.id)
    assert again == joined
    assert await member_version(node, public["id"]) == version + 1
    event = node.events.named("user_added")[-1]
    assert event.data == {"user_id": bob.id, "team_id": world.team["id"]}
    assert event.broadcast.channel_id == public["id"]
    # A private channel: non-members cannot add (not even themselves); members can.
    denied = await api.call(
        "POST",
        f"/channels/{private['id']}/members",
        token=bob.token,
        json={"user_id": bob.id},
        expect=403,
    )
    assert denied["id"] == PERMISSION
    await api.add_to_channel(alice.token, private["id"], bob.id)
    # Users outside the team cannot be added.
    outside = await api.call(
        "POST",
        f"/channels/{private['id']}/members",
        token=alice.token,
        json={"user_id": carol.id},
        expect=404,
    )
    assert outside["id"] == "app.team.get_member.missing.app_error"
    # `user_ids` answers a list.
    dave = await api.new_user(world.admin.token)
    await api.add_to_team(world.admin.token, world.team["id"], dave.id)
    many = await api.call(
        "POST",
        f"/channels/{public['id']}/members",
        token=alice.token,
        json={"user_ids": [dave.id, bob.id]},
        expect=201,
    )
    assert [m["user_id"] for m in many] == [dave.id, bob.id]
    for payload in ({"user_id": "bad"}, {"user_ids": "x"}, {"user_ids": []}, {}):
        bad = await api.call(
            "POST",
            f"/channels/{public['id']}/members",
            token=alice.token,
            json=payload,
            expect=400,
        )
        assert bad["id"] == "api.context.invalid_param.app_error", payload
    # Remove someone else (a member may), then leave yourself.
    version = await member_version(node, private["id"])
    await api.call("DELETE", f"/channels/{private['id']}/members/{bob.id}", token=alice.token)
    assert await member_version(node, private["id"]) == version + 1
    removed = [e for e in node.events.named("user_removed") if e.data["user_id"] == bob.id]
    assert {(e.broadcast.channel_id, e.broadcast.user_id) for e in removed} == {
        (private["id"], ""),
        ("", bob.id),
    }
    assert all(e.data["remover_id"] == alice.id for e in removed)
    await api.call("GET", f"/channels/{private['id']}", token=bob.token, expect=403)
    await api.call("DELETE", f"/channels/{public['id']}/members/me", token=dave.token)
    assert not await node.channel_access.is_member(dave.id, public["id"])
    gone = await api.call(
        "DELETE", f"/channels/{public['id']}/members/{dave.id}", token=alice.token, expect=404
    )
    assert gone["id"] == "app.channel.get_member.missing.app_error"
    # Outside the team you cannot remove anyone.
    await api.call(
        "DELETE", f"/channels/{public['id']}/members/{bob.id}", token=carol.token, expect=403
    )
    town = await api.call(
        "GET", f"/teams/{world.team['id']}/channels/name/town-square", token=bob.token
    )
    stuck = await api.call(
        "DELETE", f"/channels/{town['id']}/members/me", token=bob.token, expect=400
    )
    assert stuck["id"] == "api.channel.remove.default.app_error"


async def test_member_reads(api: API, world: World) -> None:
    ch = await api.new_channel(world.alice.token, world.team["id"])
    await api.add_to_channel(world.alice.token, ch["id"], world.bob.id)
    members = await api.call(
        "GET", f"/channels/{ch['id']}/members?per_page=1", token=world.bob.token
    )
    assert len(members) == 1
    everyone = await api.call("GET", f"/channels/{ch['id']}/members", token=world.bob.token)
    assert {m["user_id"] for m in everyone} == {world.alice.id, world.bob.id}
    by_ids = await api.call(
        "POST",
        f"/channels/{ch['id']}/members/ids",
        token=world.bob.token,
        json=[world.alice.id, world.carol.id],
    )
    assert [m["user_id"] for m in by_ids] == [world.alice.id]
    await api.call(
        "POST", f"/channels/{ch['id']}/members/ids", token=world.bob.token, json=[], expect=400
    )
    missing = await api.call(
        "GET", f"/channels/{ch['id']}/members/{world.carol.id}", token=world.bob.token, expect=404
    )
    assert missing["id"] == "app.channel.get_member.missing.app_error"
    team_members = await api.call(
        "GET", f"/users/me/teams/{world.team['id']}/channels/members", token=world.bob.token
    )
    assert ch["id"] in {m["channel_id"] for m in team_members}
    with_team = await api.call("GET", "/users/me/channel_members", token=world.bob.token)
    entry = next(m for m in with_team if m["channel_id"] == ch["id"])
    assert entry["team_name"] == world.team["name"] and set(entry) >= MEMBER_KEYS
    everywhere = await api.call("GET", "/users/me/channels", token=world.bob.token)
    assert ch["id"] in {c["id"] for c in everywhere}
    other = await api.call(
        "GET", f"/users/{world.alice.id}/channels", token=world.bob.token, expect=403
    )
    assert other["id"] == PERMISSION
    await api.call(
        "GET",
        f"/users/{world.alice.id}/teams/{world.team['id']}/channels",
        token=world.bob.token,
        expect=403,
    )
    await api.call(
        "GET", f"/users/me/teams/{world.team['id']}/channels", token=world.carol.token, expect=403
    )


async def test_patch_update_archive_restore(api: API, world: World, node: Hubbub) -> None:
    alice, bob = world.alice, world.bob
    ch = await api.new_channel(alice.token, world.team["id"], name="topic")
    patched = await api.call(
        "PUT", f"/channels/{ch['id']}/patch", token=alice.token, json={"header": "hello"}
    )
    assert patched["header"] == "hello" and patched["name"] == "topic"
    event = node.events.named("channel_updated")[-1]
    assert json.loads(event.data["channel"])["header"] == "hello"
    assert event.broadcast.channel_id == ch["id"]
    await api.call(
        "PUT", f"/channels/{ch['id']}/patch", token=bob.token, json={"header": "x"}, expect=403
    )
    bad = await api.call(
        "PUT",
        f"/channels/{ch['id']}/patch",
        token=alice.token,
        json={"name": "Bad Name"},
        expect=400,
    )
    assert bad["id"] == "model.channel.is_valid.1_or_more.app_error"
    updated = await api.call(
        "PUT",
        f"/channels/{ch['id']}",
        token=alice.token,
        json={"id": ch["id"], "display_name": "Topic 2", "purpose": "why"},
    )
    assert updated["display_name"] == "Topic 2" and updated["header"] == ""
    assert updated["purpose"] == "why"
    mismatch = await api.call(
        "PUT", f"/channels/{ch['id']}", token=alice.token, json={"id": "x"}, expect=400
    )
    assert mismatch["id"] == "api.context.invalid_param.app_error"
    typechange = await api.call(
        "PUT",
        f"/channels/{ch['id']}",
        token=alice.token,
        json={"id": ch["id"], "type": "P"},
        expect=400,
    )
    assert typechange["id"] == "api.channel.update_channel.typechange.app_error"
    town = await api.call(
        "GET", f"/teams/{world.team['id']}/channels/name/town-square", token=alice.token
    )
    rename = await api.call(
        "PUT",
        f"/channels/{town['id']}/patch",
        token=alice.token,
        json={"name": "plaza"},
        expect=400,
    )
    assert rename["id"] == "api.channel.update_channel.tried.app_error"
    cannot = await api.call("DELETE", f"/channels/{town['id']}", token=alice.token, expect=400)
    assert cannot["id"] == "api.channel.delete_channel.cannot.app_error"
    # Archive: gone from the public list, listed as deleted, no posting.
    await api.call("DELETE", f"/channels/{ch['id']}", token=bob.token, expect=403)
    assert await api.call("DELETE", f"/channels/{ch['id']}", token=alice.token) == {"status": "OK"}
    deleted_event = node.events.named("channel_deleted")[-1]
    assert deleted_event.data["channel_id"] == ch["id"] and deleted_event.data["delete_at"] > 0
    assert deleted_event.broadcast.team_id == world.team["id"]
    public = await api.call("GET", f"/teams/{world.team['id']}/channels", token=bob.token)
    assert ch["id"] not in {c["id"] for c in public}
    deleted = await api.call("GET", f"/teams/{world.team['id']}/channels/deleted", token=bob.token)
    assert [c["id"] for c in deleted] == [ch["id"]]
    with pytest.raises(AppError) as err:
        await node.channel_access.require_post(session_of(alice), ch["id"])
    assert err.value.id == "api.post.create_post.can_not_post_to_deleted.error"
    assert err.value.status_code == 403
    again = await api.call("DELETE", f"/channels/{ch['id']}", token=alice.token, expect=400)
    assert again["id"] == "api.channel.delete_channel.deleted.app_error"
    mine = await api.call("GET", f"/users/me/teams/{world.team['id']}/channels", token=alice.token)
    assert ch["id"] not in {c["id"] for c in mine}
    with_deleted = await api.call(
        "GET",
        f"/users/me/teams/{world.team['id']}/channels?include_deleted=true",
        token=alice.token,
    )
    assert ch["id"] in {c["id"] for c in with_deleted}
    # Restore: team admins only.
    await api.call("POST", f"/channels/{ch['id']}/restore", token=alice.token, expect=403)
    restored = await api.call("POST", f"/channels/{ch['id']}/restore", token=world.admin.token)
    assert restored["delete_at"] == 0
    assert node.events.named("channel_restored")[-1].data["channel_id"] == ch["id"]
    not_archived = await api.call(
        "POST", f"/channels/{ch['id']}/restore", token=world.admin.token, expect=400
    )
    assert not_archived["id"] == "api.channel.restore_channel.restored.app_error"
    dm = await api.call(
        "POST", "/channels/direct", token=alice.token, json=[alice.id, bob.id], expect=201
    )
    no_dm = await api.call("DELETE", f"/channels/{dm['id']}", token=alice.token, expect=400)
    assert no_dm["id"] == "api.channel.delete_channel.type.invalid"
    header = await api.call(
        "PUT", f"/channels/{dm['id']}/patch", token=bob.token, json={"header": "just us"}
    )
    assert header["header"] == "just us"
    await api.call(
        "PUT",
        f"/channels/{dm['id']}/patch",
        token=world.carol.token,
        json={"header": "x"},
        expect=403,
    )


async def test_view_roles_notify_props_and_stats(api: API, world: World, node: Hubbub) -> None:
    alice, bob = world.alice, world.bob
    ch = await api.new_channel(alice.token, world.team["id"], type_="P")
    await api.add_to_channel(alice.token, ch["id"], bob.id)
    viewed = await api.call(
        "POST",
        "/channels/members/me/view",
        token=bob.token,
        json={"channel_id": ch["id"], "prev_channel_id": ""},
    )
    assert viewed["status"] == "OK" and set(viewed["last_viewed_at_times"]) == {ch["id"]}
    member = await api.call("GET", f"/channels/{ch['id']}/members/me", token=bob.token)
    assert member["last_viewed_at"] == viewed["last_viewed_at_times"][ch["id"]]
    assert member["mention_count"] == 0 and member["msg_count"] == 0
    event = node.events.named("multiple_channels_viewed")[-1]
    assert event.broadcast.user_id == bob.id and ch["id"] in event.data["channel_times"]
    blur = await api.call(
        "POST", "/channels/members/me/view", token=bob.token, json={"channel_id": ""}
    )
    assert blur == {"status": "OK", "last_viewed_at_times": {}}
    await api.call(
        "POST", "/channels/members/me/view", token=bob.token, json={"channel_id": "x"}, expect=400
    )
    await api.call(
        "POST",
        f"/channels/members/{alice.id}/view",
        token=bob.token,
        json={"channel_id": ch["id"]},
        expect=403,
    )
    # Roles: channel admins (and team/system admins) only.
    roles_path = f"/channels/{ch['id']}/members/{bob.id}/roles"
    await api.call(
        "PUT",
        roles_path,
        token=bob.token,
        json={"roles": "channel_user channel_admin"},
        expect=403,
    )
    await api.call(
        "PUT", roles_path, token=alice.token, json={"roles": "channel_user channel_admin"}
    )
    promoted = await api.call("GET", f"/channels/{ch['id']}/members/me", token=bob.token)
    assert promoted["roles"] == "channel_user channel_admin" and promoted["scheme_admin"]
    updated = node.events.named("channel_member_updated")[-1]
    assert json.loads(updated.data["channelMember"])["scheme_admin"] is True
    assert updated.broadcast.user_id == bob.id
    wrong = await api.call(
        "PUT", roles_path, token=alice.token, json={"roles": "team_admin"}, expect=400
    )
    assert wrong["id"] == "api.channel.update_channel_member_roles.scheme_role.app_error"
    # Notify props: merged; values checked.
    props_path = f"/channels/{ch['id']}/members/me/notify_props"
    await api.call("PUT", props_path, token=bob.token, json={"desktop": "mention"})
    props = (await api.call("GET", f"/channels/{ch['id']}/members/me", token=bob.token))[
        "notify_props"
    ]
    assert props["desktop"] == "mention" and props["mark_unread"] == "all"
    bad = await api.call("PUT", props_path, token=bob.token, json={"mark_unread": "x"}, expect=400)
    assert bad["id"] == "model.channel_member.is_valid.unread_level.app_error"
    await api.call("PUT", props_path, token=bob.token, json={"desktop": 1}, expect=400)
    await api.call(
        "PUT",
        f"/channels/{ch['id']}/members/{alice.id}/notify_props",
        token=bob.token,
        json={"desktop": "all"},
        expect=403,
    )
    stats = await api.call("GET", f"/channels/{ch['id']}/stats", token=bob.token)
    assert stats == {
        "channel_id": ch["id"],
        "member_count": 2,
        "guest_count": 0,
        "pinnedpost_count": 0,
        "files_count": 0,
    }
    unread = await api.call("GET", f"/users/me/channels/{ch['id']}/unread", token=bob.token)
    assert unread["msg_count"] == 0 and unread["channel_id"] == ch["id"]


async def test_concurrent_views_share_one_transaction(api: API, world: World, node: Hubbub) -> None:
    """Views arriving together are written as one batch: each member's mark, counts and
    mentions are right, each user gets their own event, and a view of a channel the user is not
    in answers `{}` without spoiling the others in its batch."""
    alice, bob, carol = world.alice, world.bob, world.carol
    channels = [await api.new_channel(alice.token, world.team["id"]) for _ in range(3)]
    for ch in channels:
        await api.add_to_channel(alice.token, ch["id"], bob.id)
        await api.call(
            "POST",
            "/posts",
            token=alice.token,
            json={"channel_id": ch["id"], "message": f"@{bob.username} hi"},
            expect=201,
        )
    before = node.channel_members._views.batches
    views = [(bob, ch["id"]) for ch in channels] + [
        (alice, channels[0]["id"]),
        (carol, channels[1]["id"]),
    ]
    answers = await asyncio.gather(
        *(
            api.call("POST", "/channels/members/me/view", token=u.token, json={"channel_id": c})
            for u, c in views
        )
    )
    assert node.channel_members._views.batches - before < len(views)
    for (user, channel_id), answer in zip(views, answers, strict=True):
        if user is carol:
            assert answer["last_viewed_at_times"] == {}
            continue
        assert set(answer["last_viewed_at_times"]) == {channel_id}
        member = await api.call("GET", f"/channels/{channel_id}/members/me", token=user.token)
        assert member["last_viewed_at"] == answer["last_viewed_at_times"][channel_id]
        channel = await api.call("GET", f"/channels/{channel_id}", token=user.token)
        assert member["mention_count"] == 0 and member["msg_count"] == channel["total_msg_count"]
        assert member["msg_count"] > 0
    seen_by_bob = {
        c
        for e in node.events.named("multiple_channels_viewed")
        if e.broadcast.user_id == bob.id
        for c in e.data["channel_times"]
    }
    assert seen_by_bob == {ch["id"] for ch in channels}
    assert not [
        e for e in node.events.named("multiple_channels_viewed") if e.broadcast.user_id == carol.id
    ]


async def test_service_api_for_other_services(api: API, world: World, node: Hubbub) -> None:
    alice, bob, carol = world.alice, world.bob, world.carol
    public = await api.new_channel(alice.token, world.team["id"])
    private = await api.new_channel(alice.token, world.team["id"], type_="P")
    dm = await api.call(
        "POST", "/channels/direct", token=alice.token, json=[alice.id, carol.id], expect=201
    )
    channels = node.channel_access
    assert await channels.member_user_ids(private["id"]) == [alice.id]
    assert await channels.is_member(alice.id, private["id"])
    assert not await channels.is_member(bob.id, private["id"])
    in_team = set(await channels.readable_channel_ids(alice.id, world.team["id"]))
    assert {public["id"], private["id"], dm["id"]} <= in_team
    other_team = await api.new_team(world.admin.token)
    assert await channels.readable_channel_ids(alice.id, other_team["id"]) == [dm["id"]]
    assert set(await channels.readable_channel_ids(alice.id, None)) == in_team
    assert (await channels.require_read(session_of(bob), public["id"]))["id"] == public["id"]
    with pytest.raises(AppError) as err:
        await channels.require_read(session_of(bob), private["id"])
    assert err.value.status_code == 403
    with pytest.raises(AppError) as err:
        await channels.require_post(session_of(bob), public["id"])
    assert err.value.id == PERMISSION
    admin_session = session_of(world.admin, "system_user system_admin")
    assert (await channels.require_post(admin_session, private["id"]))["id"] == private["id"]
    with pytest.raises(AppError) as err:
        await channels.get("d" * 26)
    assert err.value.id == "app.channel.get.existing.app_error"
    teams = node.team_access
    assert await teams.is_member(bob.id, world.team["id"])
    assert not await teams.is_member(carol.id, world.team["id"])
    assert (await teams.require_member(session_of(bob), world.team["id"]))["id"] == world.team["id"]
    assert (await teams.require_member(admin_session, other_team["id"]))["id"]
    with pytest.raises(AppError) as err:
        await teams.require_member(session_of(carol), world.team["id"])
    assert err.value.status_code == 403
    with pytest.raises(AppError) as err:
        await teams.get("e" * 26)
    assert err.value.status_code == 404


async def test_concurrent_direct_and_join_requests_agree(
    api: API, world: World, node: Hubbub
) -> None:
    a, b = world.alice, world.carol
    dms = await asyncio.gather(
        *(
            api.call("POST", "/channels/direct", token=t, json=[a.id, b.id], expect=201)
            for t in (a.token, b.token, a.token, b.token)
        )
    )
    assert len({dm["id"] for dm in dms}) == 1
    assert sorted(await node.channel_access.member_user_ids(dms[0]["id"])) == sorted([a.id, b.id])
    ch = await api.new_channel(a.token, world.team["id"])
    joins = await asyncio.gather(
        *(api.add_to_channel(world.bob.token, ch["id"], world.bob.id) for _ in range(4))
    )
    assert all(j == joins[0] for j in joins)
    assert len(await node.channel_access.member_user_ids(ch["id"])) == 2
