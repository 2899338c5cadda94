"""Giving and taking roles changes what the API allows at once, on SQLite and PostgreSQL: the
system role `system_user_access_token` (personal access tokens), the team role `team_admin`
and the channel role `channel_admin`; and what a team admin outside a channel may do there,
which follows Mattermost's default `team_admin` role (manage members, delete others' posts; not
edit or archive the channel)."""

from __future__ import annotations

from tests.support.api import API, User
from tests.support.authz import channel_with, make_cast, post, set_user_roles, team_member

PERMISSION_ERROR = "api.context.permissions.app_error"


async def test_tokens_need_the_system_user_access_token_role(api: API, admin: User) -> None:
    cast = await make_cast(api, admin)
    me = cast.actor
    path = f"/users/{me.id}/tokens"
    denied = await api.call("POST", path, token=me.token, json={"description": "d"}, expect=403)
    assert denied["id"] == PERMISSION_ERROR
    assert denied["message"].endswith("create_user_access_token.")
    assert await api.call("GET", path, token=admin.token) == []  # nothing was made

    await set_user_roles(api, admin.token, me.id, "system_user system_user_access_token")
    token = await api.call("POST", path, token=me.token, json={"description": "d"}, expect=201)
    assert [t["id"] for t in await api.call("GET", path, token=me.token)] == [token["id"]]
    # The token works, and carries the user's roles.
    assert (await api.call("GET", "/users/me", token=token["token"]))["id"] == me.id
    # Someone else's tokens stay theirs: the token permissions do not reach other users.
    other = f"/users/{cast.other.id}/tokens"
    denied = await api.call("POST", other, token=me.token, json={"description": "x"}, expect=403)
    assert denied["message"].endswith("edit_other_users.")

    await set_user_roles(api, admin.token, me.id, "system_user")
    for method, url, body in (
        ("POST", path, {"description": "again"}),
        ("GET", path, None),
        ("GET", f"/users/tokens/{token['id']}", None),
        ("POST", "/users/tokens/revoke", {"token_id": token["id"]}),
        ("POST", "/users/tokens/disable", {"token_id": token["id"]}),
    ):
        refused = await api.call(method, url, token=me.token, json=body, expect=403)
        assert refused["id"] == PERMISSION_ERROR, (method, url)
    # Still there: the refusals changed nothing.
    assert [t["id"] for t in await api.call("GET", path, token=admin.token)] == [token["id"]]


async def test_user_roles_must_exist_and_need_manage_roles(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    path = f"/users/{user.id}/roles"
    for roles, error in (
        ("system_user Bad-Name", "api.context.invalid_param.app_error"),
        ("system_admin", "api.context.invalid_param.app_error"),
        ("system_user system_manager", "api.user.update_user_roles.license.app_error"),
        ("system_user no_such_role", "app.role.check_roles_exist.role_not_found"),
    ):
        bad = await api.call("PUT", path, token=admin.token, json={"roles": roles}, expect=400)
        assert bad["id"] == error, roles
    denied = await api.call(
        "PUT", path, token=user.token, json={"roles": "system_user system_post_all"}, expect=403
    )
    assert denied["message"].endswith("manage_roles.")
    assert (await api.call("GET", f"/users/{user.id}", token=admin.token))["roles"] == "system_user"


async def test_team_admin_role_given_and_taken(api: API, admin: User) -> None:
    cast = await make_cast(api, admin)
    member = await team_member(api, cast)
    team = cast.team["id"]
    remove = f"/teams/{team}/members/{member.id}"
    roles = f"/teams/{team}/members/{cast.actor.id}/roles"
    denied = await api.call("DELETE", remove, token=cast.actor.token, expect=403)
    assert denied["message"].endswith("remove_user_from_team.")

    await api.call("PUT", roles, token=admin.token, json={"roles": "team_user team_admin"})
    await api.call("DELETE", remove, token=cast.actor.token)
    gone = await api.call("GET", f"/teams/{team}/members/{member.id}", token=admin.token)
    assert gone["delete_at"] > 0

    await api.call("PUT", roles, token=admin.token, json={"roles": "team_user"})
    again = await team_member(api, cast)
    await api.call(
        "DELETE", f"/teams/{team}/members/{again.id}", token=cast.actor.token, expect=403
    )


async def test_channel_admin_role_given_and_taken(api: API, admin: User) -> None:
    cast = await make_cast(api, admin)
    member = await team_member(api, cast)
    channel = await channel_with(api, cast, "P", cast.actor, member)
    target = f"/channels/{channel['id']}/members/{member.id}/roles"
    mine = f"/channels/{channel['id']}/members/{cast.actor.id}/roles"
    promote = {"roles": "channel_user channel_admin"}
    denied = await api.call("PUT", target, token=cast.actor.token, json=promote, expect=403)
    assert denied["message"].endswith("manage_channel_roles.")

    await api.call("PUT", mine, token=cast.other.token, json=promote)  # other created it: admin
    await api.call("PUT", target, token=cast.actor.token, json=promote)
    found = await api.call(
        "GET", f"/channels/{channel['id']}/members/{member.id}", token=admin.token
    )
    assert found["scheme_admin"] is True

    await api.call("PUT", mine, token=cast.other.token, json={"roles": "channel_user"})
    await api.call(
        "PUT", target, token=cast.actor.token, json={"roles": "channel_user"}, expect=403
    )


async def test_team_admin_outside_a_channel(api: API, admin: User) -> None:
    """Mattermost's `team_admin` holds the members and posts permissions of the team's channels
    but not `manage_*_channel_properties` nor `delete_*_channel`: a team admin who is not in a
    channel may add and remove its members and delete others' posts there, not rename or
    archive it."""
    cast = await make_cast(api, admin)
    boss = await team_member(api, cast)
    await api.call(
        "PUT",
        f"/teams/{cast.team['id']}/members/{boss.id}/roles",
        token=admin.token,
        json={"roles": "team_user team_admin"},
    )
    newcomer = await team_member(api, cast)
    for channel in (cast.public, cast.private):
        cid = channel["id"]
        kind = "public" if channel["type"] == "O" else "private"
        patch = await api.call(
            "PUT", f"/channels/{cid}/patch", token=boss.token, json={"header": "x"}, expect=403
        )
        assert patch["message"].endswith(f"manage_{kind}_channel_properties.")
        archive = await api.call("DELETE", f"/channels/{cid}", token=boss.token, expect=403)
        assert archive["message"].endswith(f"delete_{kind}_channel.")
        assert (await api.call("GET", f"/channels/{cid}", token=admin.token))["delete_at"] == 0

        await api.call(
            "POST",
            f"/channels/{cid}/members",
            token=boss.token,
            json={"user_id": newcomer.id},
            expect=201,
        )
        await api.call("DELETE", f"/channels/{cid}/members/{newcomer.id}", token=boss.token)
        victim = await post(api, cast.other.token, cid)
        await api.call("DELETE", f"/posts/{victim['id']}", token=boss.token)
        # Deleting others' posts is not editing them.
        kept = await post(api, cast.other.token, cid)
        await api.call(
            "PUT",
            f"/posts/{kept['id']}/patch",
            token=boss.token,
            json={"message": "mine now"},
            expect=403,
        )
    # The private channel's content stays closed to the team admin.
    await api.call("GET", f"/channels/{cast.private['id']}/posts", token=boss.token, expect=403)
