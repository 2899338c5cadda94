"""Teams and team members over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.app import Hubbub
from tests.support.api import API, User

TEAM_KEYS = {
    "id",
    "create_at",
    "update_at",
    "delete_at",
    "display_name",
    "name",
    "description",
    "email",
    "type",
    "company_name",
    "allowed_domains",
    "invite_id",
    "allow_open_invite",
    "scheme_id",
    "group_constrained",
    "policy_id",
    "cloud_limits_archived",
}
MEMBER_KEYS = {
    "team_id",
    "user_id",
    "roles",
    "delete_at",
    "scheme_guest",
    "scheme_user",
    "scheme_admin",
    "explicit_roles",
}


async def channel_names(api: API, token: str, team_id: str) -> set[str]:
    found = await api.call("GET", f"/users/me/teams/{team_id}/channels", token=token)
    return {c["name"] for c in found}


async def test_create_team_makes_creator_admin_and_default_channels(
    api: API, admin: User, node: Hubbub
) -> None:
    team = await api.new_team(admin.token, name="alpha")
    assert set(team) == TEAM_KEYS
    assert team["name"] == "alpha" and team["type"] == "O" and team["allow_open_invite"] is True
    assert team["email"] == admin.data["email"] and len(team["invite_id"]) == 26
    member = await api.call("GET", f"/teams/{team['id']}/members/me", token=admin.token)
    assert set(member) == MEMBER_KEYS
    assert member["roles"] == "team_user team_admin"
    assert member["scheme_admin"] is True and member["explicit_roles"] == ""
    channels = await api.call("GET", f"/users/me/teams/{team['id']}/channels", token=admin.token)
    by_name = {c["name"]: c for c in channels}
    assert set(by_name) == {"town-square", "off-topic"}
    assert by_name["town-square"]["display_name"] == "Town Square"
    assert by_name["off-topic"]["display_name"] == "Off-Topic"
    assert [e.data for e in node.events.named("added_to_team")] == [
        {"team_id": team["id"], "user_id": admin.id}
    ]


@pytest.mark.parametrize(
    ("name", "error_id"),
    [
        ("a", "model.team.is_valid.characters.app_error"),
        ("Upper", "model.team.is_valid.characters.app_error"),
        ("with space", "model.team.is_valid.characters.app_error"),
        ("-lead", "model.team.is_valid.characters.app_error"),
        ("trail-", "model.team.is_valid.characters.app_error"),
        ("under_score", "model.team.is_valid.characters.app_error"),
        ("x" * 65, "model.team.is_valid.url.app_error"),
        ("apiary", "model.team.is_valid.reserved.app_error"),
        ("signup", "model.team.is_valid.reserved.app_error"),
    ],
)
async def test_team_name_rules(api: API, admin: User, name: str, error_id: str) -> None:
    body = await api.call(
        "POST",
        "/teams",
        token=admin.token,
        json={"name": name, "display_name": "X", "type": "O"},
        expect=400,
    )
    assert body["id"] == error_id


async def test_team_create_bad_input(api: API, admin: User) -> None:
    ok_name = "x" * 64
    await api.call(
        "POST",
        "/teams",
        token=admin.token,
        json={"name": ok_name, "display_name": "Long", "type": "I"},
        expect=201,
    )
    dup = await api.call(
        "POST",
        "/teams",
        token=admin.token,
        json={"name": ok_name, "display_name": "Again", "type": "O"},
        expect=400,
    )
    assert dup["id"] == "app.team.save.existing.app_error"
    cases: list[tuple[Any, str]] = [
        (
            {"name": "okname", "display_name": "X", "type": "Z"},
            "model.team.is_valid.type.app_error",
        ),
        ({"name": "okname", "type": "O"}, "model.team.is_valid.name.app_error"),
        ({"name": 5, "display_name": "X", "type": "O"}, "api.context.invalid_body_param.app_error"),
        ([1, 2], "api.context.invalid_body_param.app_error"),
    ]
    for payload, error_id in cases:
        body = await api.call("POST", "/teams", token=admin.token, json=payload, expect=400)
        assert body["id"] == error_id, payload
    resp = await api.raw("POST", "/teams", token=admin.token, content=b"{not json")
    assert resp.status_code == 400
    assert resp.json()["id"] == "api.context.invalid_body_param.app_error"
    await api.call("POST", "/teams", json={"name": "anon", "display_name": "A"}, expect=401)


async def test_get_team_by_id_name_and_exists_sanitizes_for_members(api: API, admin: User) -> None:
    team = await api.new_team(admin.token, name="bravo")
    user = await api.new_user(admin.token)
    await api.add_to_team(admin.token, team["id"], user.id)
    seen = await api.call("GET", f"/teams/{team['id']}", token=user.token)
    assert seen["name"] == "bravo"
    assert seen["email"] == "" and seen["invite_id"] == ""
    as_admin = await api.call("GET", f"/teams/{team['id']}", token=admin.token)
    assert as_admin["invite_id"] == team["invite_id"]
    by_name = await api.call("GET", "/teams/name/bravo", token=user.token)
    assert by_name["id"] == team["id"]
    assert await api.call("GET", "/teams/name/bravo/exists", token=user.token) == {"exists": True}
    assert await api.call("GET", "/teams/name/nothere/exists", token=user.token) == {
        "exists": False
    }
    # NUL characters never reach the database: every URL carrying one is a 400.
    await api.call("GET", "/teams/name/a%00b", token=user.token, expect=400)
    await api.call("GET", "/teams/name/a%00b/exists", token=user.token, expect=400)
    missing = await api.call("GET", "/teams/name/nothere", token=user.token, expect=404)
    assert missing["id"] == "app.team.get_by_name.missing.app_error"
    unknown = await api.call("GET", "/teams/" + "a" * 26, token=user.token, expect=404)
    assert unknown["id"] == "app.team.get.find.app_error"
    bad = await api.call("GET", "/teams/not-an-id", token=user.token, expect=400)
    assert bad["id"] == "api.context.invalid_param.app_error"


async def test_list_teams_admin_sees_all_users_see_open(api: API, admin: User) -> None:
    open_team = await api.new_team(admin.token, name="opened")
    closed = await api.new_team(admin.token, name="closed", type_="I")
    assert closed["allow_open_invite"] is False and closed["type"] == "I"
    user = await api.new_user(admin.token)
    all_ids = {t["id"] for t in await api.call("GET", "/teams", token=admin.token)}
    assert {open_team["id"], closed["id"]} <= all_ids
    visible = {t["id"] for t in await api.call("GET", "/teams", token=user.token)}
    assert open_team["id"] in visible and closed["id"] not in visible
    paged = await api.call("GET", "/teams?page=0&per_page=1", token=admin.token)
    assert len(paged) == 1
    forbidden = await api.call("GET", f"/teams/{closed['id']}", token=user.token, expect=403)
    assert forbidden["id"] == "api.context.permissions.app_error"


async def test_join_open_team_and_default_channels(api: API, admin: User, node: Hubbub) -> None:
    team = await api.new_team(admin.token)
    closed = await api.new_team(admin.token, type_="I")
    user = await api.new_user(admin.token)
    member = await api.add_to_team(user.token, team["id"], user.id)
    assert member["roles"] == "team_user" and member["delete_at"] == 0
    assert await channel_names(api, user.token, team["id"]) == {"town-square", "off-topic"}
    assert {"team_id": team["id"], "user_id": user.id} in [
        e.data for e in node.events.named("added_to_team")
    ]
    added = [e for e in node.events.named("user_added") if e.data["user_id"] == user.id]
    assert len(added) == 2 and all(e.broadcast.channel_id for e in added)
    # Joining again returns the existing membership.
    again = await api.add_to_team(user.token, team["id"], user.id)
    assert again == member
    denied = await api.call(
        "POST",
        f"/teams/{closed['id']}/members",
        token=user.token,
        json={"team_id": closed["id"], "user_id": user.id},
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"


async def test_adding_others_needs_add_user_to_team(api: API, admin: User) -> None:
    """As in Mattermost's default roles, `team_user` holds `add_user_to_team`: any member adds
    others; a non-member cannot, not even to join an invite-only team themselves."""
    owner = await api.new_user(admin.token)
    team = await api.new_team(owner.token, type_="I")
    member = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    outsider = await api.new_user(admin.token)
    await api.add_to_team(owner.token, team["id"], member.id)
    for user in (other, outsider):
        body = {"team_id": team["id"], "user_id": user.id}
        denied = await api.call(
            "POST", f"/teams/{team['id']}/members", token=outsider.token, json=body, expect=403
        )
        assert denied["message"].endswith("add_user_to_team.")
    body = {"team_id": team["id"], "user_id": other.id}
    await api.call(
        "POST", f"/teams/{team['id']}/members", token=member.token, json=body, expect=201
    )
    unknown = {"team_id": team["id"], "user_id": "u" * 26}
    resp = await api.call(
        "POST", f"/teams/{team['id']}/members", token=owner.token, json=unknown, expect=404
    )
    assert resp["id"] == "app.user.missing_account.const"
    for payload in (
        {"team_id": "x" * 26, "user_id": other.id},
        {"team_id": team["id"], "user_id": "nope"},
        {"team_id": team["id"], "user_id": 7},
    ):
        bad = await api.call(
            "POST", f"/teams/{team['id']}/members", token=owner.token, json=payload, expect=400
        )
        assert bad["id"] == "api.context.invalid_param.app_error", payload


async def test_member_lists_ids_and_batch(api: API, admin: User) -> None:
    team = await api.new_team(admin.token)
    users = [await api.new_user(admin.token) for _ in range(3)]
    batch = await api.call(
        "POST",
        f"/teams/{team['id']}/members/batch",
        token=admin.token,
        json=[{"team_id": team["id"], "user_id": u.id} for u in users[:2]],
        expect=201,
    )
    assert {m["user_id"] for m in batch} == {users[0].id, users[1].id}
    graceful = await api.call(
        "POST",
        f"/teams/{team['id']}/members/batch?graceful=true",
        token=admin.token,
        json=[
            {"team_id": team["id"], "user_id": users[2].id},
            {"team_id": team["id"], "user_id": "q" * 26},
        ],
        expect=201,
    )
    assert graceful[0]["member"]["user_id"] == users[2].id and graceful[0]["error"] is None
    assert graceful[1]["member"] is None
    assert graceful[1]["error"]["id"] == "app.user.missing_account.const"
    # Adding needs `add_user_to_team` in the team: its members have it (team_user), others not.
    outsider = await api.new_user(admin.token)
    denied = await api.call(
        "POST",
        f"/teams/{team['id']}/members/batch",
        token=outsider.token,
        json=[{"team_id": team["id"], "user_id": outsider.id}],
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"
    everyone = await api.call(
        "GET", f"/teams/{team['id']}/members?per_page=1000", token=users[0].token
    )
    assert len(everyone) == 4
    page0 = await api.call("GET", f"/teams/{team['id']}/members?per_page=3", token=admin.token)
    page1 = await api.call(
        "GET", f"/teams/{team['id']}/members?per_page=3&page=1", token=admin.token
    )
    assert len(page0) == 3 and len(page1) == 1
    assert {m["user_id"] for m in page0 + page1} == {admin.id, *(u.id for u in users)}
    by_ids = await api.call(
        "POST",
        f"/teams/{team['id']}/members/ids",
        token=users[0].token,
        json=[users[1].id, admin.id],
    )
    assert {m["user_id"] for m in by_ids} == {users[1].id, admin.id}
    bad = await api.call(
        "POST", f"/teams/{team['id']}/members/ids", token=admin.token, json=["x"], expect=400
    )
    assert bad["id"] == "api.context.invalid_param.app_error"
    mine = await api.call("GET", "/users/me/teams/members", token=users[0].token)
    assert [m["team_id"] for m in mine] == [team["id"]]


async def test_leave_team_leaves_its_channels(api: API, admin: User, node: Hubbub) -> None:
    team = await api.new_team(admin.token)
    user = await api.new_user(admin.token)
    await api.add_to_team(admin.token, team["id"], user.id)
    private = await api.new_channel(admin.token, team["id"], type_="P")
    await api.add_to_channel(admin.token, private["id"], user.id)
    before = await node.channel_access.get_row(private["id"])
    await api.call("DELETE", f"/teams/{team['id']}/members/me", token=user.token)
    assert not await node.channel_access.is_member(user.id, private["id"])
    assert (await node.channel_access.get_row(private["id"])).member_version > before.member_version
    assert await node.channel_access.readable_channel_ids(user.id, team["id"]) == []
    assert await api.call("GET", "/users/me/teams", token=user.token) == []
    gone = await api.call("GET", f"/teams/{team['id']}/members/{user.id}", token=admin.token)
    assert gone["delete_at"] > 0
    events = [e for e in node.events.named("leave_team") if e.data["user_id"] == user.id]
    assert {e.broadcast.team_id for e in events} == {team["id"], ""}
    assert {e.broadcast.user_id for e in events} == {user.id, ""}
    again = await api.call(
        "DELETE", f"/teams/{team['id']}/members/{user.id}", token=admin.token, expect=400
    )
    assert again["id"] == "api.team.remove_user_from_team.missing.app_error"
    # Rejoining revives the membership and the default channels.
    member = await api.add_to_team(admin.token, team["id"], user.id)
    assert member["delete_at"] == 0
    assert await channel_names(api, user.token, team["id"]) == {"town-square", "off-topic"}


async def test_removing_someone_else_needs_team_admin(api: API, admin: User) -> None:
    team = await api.new_team(admin.token)
    one, two = await api.new_user(admin.token), await api.new_user(admin.token)
    for u in (one, two):
        await api.add_to_team(admin.token, team["id"], u.id)
    denied = await api.call(
        "DELETE", f"/teams/{team['id']}/members/{two.id}", token=one.token, expect=403
    )
    assert denied["id"] == "api.context.permissions.app_error"
    await api.call("DELETE", f"/teams/{team['id']}/members/{two.id}", token=admin.token)
    assert not await api.call("GET", "/users/me/teams", token=two.token)


async def test_patch_update_and_delete_team(api: API, admin: User, node: Hubbub) -> None:
    team = await api.new_team(admin.token)
    user = await api.new_user(admin.token)
    await api.add_to_team(admin.token, team["id"], user.id)
    denied = await api.call(
        "PUT",
        f"/teams/{team['id']}/patch",
        token=user.token,
        json={"display_name": "Nope"},
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"
    patched = await api.call(
        "PUT",
        f"/teams/{team['id']}/patch",
        token=admin.token,
        json={"display_name": "Renamed", "description": "d", "allow_open_invite": False},
    )
    assert patched["display_name"] == "Renamed" and patched["description"] == "d"
    assert patched["allow_open_invite"] is False and patched["type"] == "I"
    assert patched["invite_id"] != team["invite_id"]
    event = node.events.named("update_team")[-1]
    assert '"Renamed"' in event.data["team"] and event.broadcast.team_id == team["id"]
    bad = await api.call(
        "PUT", f"/teams/{team['id']}/patch", token=admin.token, json={"display_name": 3}, expect=400
    )
    assert bad["id"] == "api.context.invalid_body_param.app_error"
    mismatch = await api.call(
        "PUT", f"/teams/{team['id']}", token=admin.token, json={"id": "x"}, expect=400
    )
    assert mismatch["id"] == "api.context.invalid_param.app_error"
    updated = await api.call(
        "PUT",
        f"/teams/{team['id']}",
        token=admin.token,
        json={"id": team["id"], "display_name": "Full", "allow_open_invite": True},
    )
    assert updated["display_name"] == "Full" and updated["description"] == ""
    assert updated["type"] == "O"
    permanent = await api.call(
        "DELETE", f"/teams/{team['id']}?permanent=true", token=admin.token, expect=401
    )
    assert permanent["id"] == "api.user.delete_team.not_enabled.app_error"
    await api.call("DELETE", f"/teams/{team['id']}", token=user.token, expect=403)
    assert await api.call("DELETE", f"/teams/{team['id']}", token=admin.token) == {"status": "OK"}
    assert await api.call("GET", "/users/me/teams", token=user.token) == []
    assert team["id"] not in {t["id"] for t in await api.call("GET", "/teams", token=admin.token)}
    deleted = await api.call("GET", f"/teams/{team['id']}", token=admin.token)
    assert deleted["delete_at"] > 0


async def test_member_roles(api: API, admin: User) -> None:
    team = await api.new_team(admin.token)
    user, other = await api.new_user(admin.token), await api.new_user(admin.token)
    for u in (user, other):
        await api.add_to_team(admin.token, team["id"], u.id)
    path = f"/teams/{team['id']}/members/{user.id}/roles"
    denied = await api.call(
        "PUT", path, token=other.token, json={"roles": "team_user team_admin"}, expect=403
    )
    assert denied["id"] == "api.context.permissions.app_error"
    await api.call("PUT", path, token=admin.token, json={"roles": "team_user team_admin"})
    member = await api.call("GET", f"/teams/{team['id']}/members/{user.id}", token=user.token)
    assert member["roles"] == "team_user team_admin" and member["scheme_admin"] is True
    # Now a team admin, the user may add others.
    newcomer = await api.new_user(admin.token)
    await api.add_to_team(user.token, team["id"], newcomer.id)
    bad = await api.call(
        "PUT", path, token=admin.token, json={"roles": "channel_admin"}, expect=400
    )
    assert bad["id"] == "api.channel.update_team_member_roles.scheme_role.app_error"
    await api.call("PUT", path, token=admin.token, json={"roles": 1}, expect=400)
    unknown = f"/teams/{team['id']}/members/{'z' * 26}/roles"
    await api.call("PUT", unknown, token=admin.token, json={"roles": "team_user"}, expect=404)


async def test_stats_unread_and_non_member_access(api: API, admin: User) -> None:
    team = await api.new_team(admin.token, type_="I")
    user = await api.new_user(admin.token)
    outsider = await api.new_user(admin.token)
    await api.add_to_team(admin.token, team["id"], user.id)
    stats = await api.call("GET", f"/teams/{team['id']}/stats", token=user.token)
    assert stats == {"team_id": team["id"], "total_member_count": 2, "active_member_count": 2}
    unread = await api.call("GET", "/users/me/teams/unread", token=user.token)
    assert [u["team_id"] for u in unread] == [team["id"]]
    assert unread[0]["msg_count"] == 0 and unread[0]["mention_count"] == 0
    excluded = await api.call(
        "GET", f"/users/me/teams/unread?exclude_team={team['id']}", token=user.token
    )
    assert excluded == []
    for path in (
        f"/teams/{team['id']}",
        f"/teams/{team['id']}/stats",
        f"/teams/{team['id']}/members",
        f"/teams/{team['id']}/members/{user.id}",
        f"/users/{user.id}/teams",
        f"/users/{user.id}/teams/members",
        f"/users/{user.id}/teams/unread",
    ):
        body = await api.call("GET", path, token=outsider.token, expect=403)
        assert body["id"] == "api.context.permissions.app_error", path
    admin_view = await api.call("GET", f"/users/{user.id}/teams", token=admin.token)
    assert [t["id"] for t in admin_view] == [team["id"]]
    await api.call("GET", "/teams/" + "b" * 26 + "/stats", token=admin.token, expect=404)
    await api.call("GET", "/teams/bad/members", token=admin.token, expect=400)
    await api.call("GET", "/users/bad/teams", token=admin.token, expect=400)
