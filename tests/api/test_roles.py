"""Roles over the API, on SQLite and PostgreSQL: Mattermost's built-in roles with their default
permissions, readable by everyone, patched by admins only; and the Permissions service resolving
system, team and channel roles from the same definitions."""

from __future__ import annotations

import json

from hubbub.app import Hubbub
from hubbub.services.role_catalog import ALL_PERMISSIONS
from tests.support.api import API, User

ROLE_KEYS = {
    "id",
    "name",
    "display_name",
    "description",
    "create_at",
    "update_at",
    "delete_at",
    "permissions",
    "scheme_managed",
    "built_in",
}


async def test_roles_by_names_have_mattermosts_shape_and_defaults(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    names = ["system_user", "team_user", "channel_user", "channel_admin", "no_such_role", " "]
    found = await api.call("POST", "/roles/names", token=user.token, json=names)
    by_name = {r["name"]: r for r in found}
    assert set(by_name) == {"system_user", "team_user", "channel_user", "channel_admin"}
    for role in found:
        assert set(role) == ROLE_KEYS
        assert len(role["id"]) == 26 and role["built_in"] is True and role["delete_at"] == 0
    assert by_name["system_user"]["display_name"] == "authentication.roles.global_user.name"
    # What the web app needs to enable the message box, reactions and uploads.
    for permission in ("create_post", "add_reaction", "upload_file", "read_channel"):
        assert permission in by_name["channel_user"]["permissions"]
    assert "create_direct_channel" in by_name["system_user"]["permissions"]
    assert "create_public_channel" in by_name["team_user"]["permissions"]
    assert "manage_channel_roles" in by_name["channel_admin"]["permissions"]
    assert "manage_system" not in by_name["system_user"]["permissions"]

    # The same role by id and by name; ids are stable across reads.
    role = by_name["channel_user"]
    assert await api.call("GET", f"/roles/{role['id']}", token=user.token) == role
    assert await api.call("GET", "/roles/name/channel_user", token=user.token) == role


async def test_system_admin_has_every_permission(api: API, admin: User) -> None:
    [role] = await api.call("POST", "/roles/names", token=admin.token, json=["system_admin"])
    assert set(role["permissions"]) == set(ALL_PERMISSIONS)
    assert "manage_system" in role["permissions"]
    everything = await api.call("GET", "/roles", token=admin.token)
    assert {"system_admin", "team_admin", "channel_guest", "system_post_all"} <= {
        r["name"] for r in everything
    }


async def test_bad_role_requests(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    empty = await api.call("POST", "/roles/names", token=user.token, json=[], expect=400)
    assert empty["id"] == "api.context.invalid_param.app_error"
    bad = await api.call("POST", "/roles/names", token=user.token, json=["Bad-Name"], expect=400)
    assert bad["id"] == "api.context.invalid_param.app_error"
    missing = await api.call("GET", "/roles/name/no_such_role", token=user.token, expect=404)
    assert missing["id"] == "app.role.get_by_name.app_error"
    missing = await api.call("GET", "/roles/" + "a" * 26, token=user.token, expect=404)
    assert missing["id"] == "app.role.get.app_error"
    await api.call("GET", "/roles/short", token=user.token, expect=400)
    await api.call("POST", "/roles/names", json=["system_user"], expect=401)
    denied = await api.call("GET", "/roles", token=user.token, expect=403)
    assert denied["id"] == "api.context.permissions.app_error"


async def test_patch_is_for_admins_and_is_stored(api: API, admin: User, node: Hubbub) -> None:
    user = await api.new_user(admin.token)
    role = await api.call("GET", "/roles/name/channel_user", token=admin.token)
    without_reactions = [p for p in role["permissions"] if p != "add_reaction"]

    denied = await api.call(
        "PUT",
        f"/roles/{role['id']}/patch",
        token=user.token,
        json={"permissions": without_reactions},
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"

    patched = await api.call(
        "PUT",
        f"/roles/{role['id']}/patch",
        token=admin.token,
        json={"permissions": [*without_reactions, "create_post"]},  # a duplicate is dropped
    )
    assert sorted(patched["permissions"]) == sorted(without_reactions)
    assert patched["update_at"] >= role["update_at"]
    assert await api.call("GET", "/roles/name/channel_user", token=user.token) == patched

    [event] = node.events.named("role_updated")
    assert json.loads(event.data["role"]) == patched
    assert event.broadcast.user_id == "" and event.broadcast.team_id == ""  # everyone

    # The Permissions service follows the patch.
    member = ["channel_user"]
    assert not await node.permissions.granted(member, "add_reaction")
    assert await node.permissions.granted(member, "create_post")


async def test_patch_rules(api: API, admin: User) -> None:
    admin_role = await api.call("GET", "/roles/name/system_admin", token=admin.token)
    guest = await api.call("GET", "/roles/name/channel_guest", token=admin.token)
    user_role = await api.call("GET", "/roles/name/system_user", token=admin.token)

    unknown = await api.call(
        "PUT",
        f"/roles/{user_role['id']}/patch",
        token=admin.token,
        json={"permissions": [*user_role["permissions"], "fly_to_the_moon"]},
        expect=400,
    )
    assert unknown["id"] == "app.role.save.invalid_role.app_error"
    blocked = await api.call(
        "PUT",
        f"/roles/{user_role['id']}/patch",
        token=admin.token,
        json={"permissions": [*user_role["permissions"], "manage_roles"]},
        expect=501,
    )
    assert blocked["id"] == "api.roles.patch_roles.not_allowed_permission.error"
    unlicensed = await api.call(
        "PUT",
        f"/roles/{guest['id']}/patch",
        token=admin.token,
        json={"permissions": guest["permissions"]},
        expect=501,
    )
    assert unlicensed["id"] == "api.roles.patch_roles.license.error"
    bad_body = await api.call(
        "PUT",
        f"/roles/{admin_role['id']}/patch",
        token=admin.token,
        json={"permissions": "all"},
        expect=400,
    )
    assert bad_body["id"] == "api.context.invalid_param.app_error"
    # An empty patch changes nothing and answers the role.
    same = await api.call("PUT", f"/roles/{user_role['id']}/patch", token=admin.token, json={})
    assert same == user_role


async def test_permissions_per_role(api: API, admin: User, node: Hubbub) -> None:
    """System, team and channel scopes resolve from the member's roles."""
    user = await api.new_user(admin.token)
    outsider = await api.new_user(admin.token)
    team = await api.new_team(admin.token)
    await api.add_to_team(admin.token, team["id"], user.id)
    channel = await api.new_channel(admin.token, team["id"], "P")
    await api.add_to_channel(admin.token, channel["id"], user.id)

    user_session = await node.auth.resolve(user.token)
    outsider_session = await node.auth.resolve(outsider.token)
    admin_session = await node.auth.resolve(admin.token)
    assert user_session and outsider_session and admin_session
    p = node.permissions

    assert await p.has(admin_session, "manage_system")
    assert not await p.has(user_session, "manage_system")
    assert await p.has(user_session, "create_direct_channel")
    assert not await p.has(user_session, "edit_other_users")

    assert await p.has_for_team(user_session, team["id"], "create_public_channel")
    assert not await p.has_for_team(user_session, team["id"], "manage_team")
    assert not await p.has_for_team(outsider_session, team["id"], "create_public_channel")
    assert await p.has_for_team(admin_session, team["id"], "manage_team")  # team admin and more

    assert await p.has_for_channel(user_session, channel["id"], "create_post")
    assert not await p.has_for_channel(user_session, channel["id"], "manage_channel_roles")
    assert not await p.has_for_channel(outsider_session, channel["id"], "create_post")
    assert await p.has_for_channel(admin_session, channel["id"], "manage_channel_roles")
    # A team permission checked on a channel comes from the channel's team.
    assert await p.has_for_channel(user_session, channel["id"], "create_private_channel")

    # Making the user a channel admin grants the channel admin's permissions.
    await api.call(
        "PUT",
        f"/channels/{channel['id']}/members/{user.id}/roles",
        token=admin.token,
        json={"roles": "channel_user channel_admin"},
    )
    assert await p.has_for_channel(user_session, channel["id"], "manage_channel_roles")
