"""The permission table, walked on SQLite and PostgreSQL: for every permission hubbub checks, a
door (an endpoint that needs it) and the role that grants it to the actor. For each door:

1. the role is patched so that it lacks the permission: the actor is refused (403
   `api.context.permissions.app_error`, or the data stays hidden for a listing) and nothing
   changed;
2. the role is patched to grant it: the same request, on fresh data, succeeds and did the change;
3. the role loses it again: refused again, nothing changed.

The actor is an ordinary user (`system_user`, `team_user` in the team, `channel_user` in both
channels), so a door names the one role of theirs that decides. The doors run one after another
per scope on one node, each on fresh data; a failure names the door. A last test reads the source
for permission names and fails if one that a check uses has no door here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hubbub.services.role_catalog import KNOWN_PERMISSIONS
from tests.support.api import API, User
from tests.support.authz import (
    Cast,
    channel_with,
    fresh_name,
    make_cast,
    post,
    team_member,
)
from tests.support.files import png, upload
from tests.support.permission_doors import (
    DOORS,
    Attempt,
    Effect,
    door,
    get,
    in_team,
    is_member,
    patch_role,
    post_message,
    reacted,
    reactions_of,
    token_for,
    upload_emoji,
    walk_door,
)

# Channel scope: the actor's `channel_user` role


@door("create_post", "channel_user")
async def create_post(api: API, cast: Cast) -> Attempt:
    message = fresh_name("hello ")
    body = {"channel_id": cast.public["id"], "message": message}
    resp = await api.raw("POST", "/posts", cast.actor.token, json=body)

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/channels/{cast.public['id']}/posts")
        return any(p["message"] == message for p in found["posts"].values())

    return resp, effect


@door("upload_file", "channel_user")
async def upload_file(api: API, cast: Cast) -> Attempt:
    name = fresh_name("f") + ".png"
    resp = await upload(api, cast.actor.token, cast.public["id"], [(name, png(4, 4))])

    async def effect() -> bool:
        if resp.status_code != 201:
            return False  # nothing to look up: a refusal returns no id
        info = resp.json()["file_infos"][0]
        found = await api.raw("GET", f"/files/{info['id']}/info", cast.admin.token)
        return found.status_code == 200

    return resp, effect


@door("add_reaction", "channel_user")
async def add_reaction(api: API, cast: Cast) -> Attempt:
    target = await post(api, cast.other.token, cast.public["id"])
    body = {"user_id": cast.actor.id, "post_id": target["id"], "emoji_name": "smile"}
    resp = await api.raw("POST", "/reactions", cast.actor.token, json=body)

    async def effect() -> bool:
        return cast.actor.id in await reactions_of(api, cast, target["id"])

    return resp, effect


@door("remove_reaction", "channel_user")
async def remove_own_reaction(api: API, cast: Cast) -> Attempt:
    post_id = await reacted(api, cast, cast.actor)
    path = f"/users/{cast.actor.id}/posts/{post_id}/reactions/smile"
    resp = await api.raw("DELETE", path, cast.actor.token)

    async def effect() -> bool:
        return cast.actor.id not in await reactions_of(api, cast, post_id)

    return resp, effect


@door("remove_others_reactions", "channel_user")
async def remove_others_reaction(api: API, cast: Cast) -> Attempt:
    post_id = await reacted(api, cast, cast.other)
    path = f"/users/{cast.other.id}/posts/{post_id}/reactions/smile"
    resp = await api.raw("DELETE", path, cast.actor.token)

    async def effect() -> bool:
        return cast.other.id not in await reactions_of(api, cast, post_id)

    return resp, effect


async def _edit(api: API, cast: Cast, author: User) -> Attempt:
    target = await post(api, author.token, cast.public["id"])
    edited = fresh_name("edited ")
    body = {"message": edited}
    resp = await api.raw("PUT", f"/posts/{target['id']}/patch", cast.actor.token, json=body)

    async def effect() -> bool:
        return await post_message(api, cast, target["id"]) == edited

    return resp, effect


@door("edit_post", "channel_user")
async def edit_own_post(api: API, cast: Cast) -> Attempt:
    return await _edit(api, cast, cast.actor)


@door("edit_others_posts", "channel_user")
async def edit_others_post(api: API, cast: Cast) -> Attempt:
    return await _edit(api, cast, cast.other)


async def _delete(api: API, cast: Cast, author: User) -> Attempt:
    target = await post(api, author.token, cast.public["id"])
    resp = await api.raw("DELETE", f"/posts/{target['id']}", cast.actor.token)

    async def effect() -> bool:
        return await post_message(api, cast, target["id"]) == "<deleted>"

    return resp, effect


@door("delete_post", "channel_user")
async def delete_own_post(api: API, cast: Cast) -> Attempt:
    return await _delete(api, cast, cast.actor)


@door("delete_others_posts", "channel_user")
async def delete_others_post(api: API, cast: Cast) -> Attempt:
    return await _delete(api, cast, cast.other)


@door("read_deleted_posts", "channel_user")
async def read_deleted_post(api: API, cast: Cast) -> Attempt:
    target = await post(api, cast.other.token, cast.public["id"])
    await api.call("DELETE", f"/posts/{target['id']}", token=cast.other.token)
    resp = await api.raw("GET", f"/posts/{target['id']}?include_deleted=true", cast.actor.token)
    return resp, None


async def _patch_channel(api: API, cast: Cast, channel: dict[str, Any]) -> Attempt:
    header = fresh_name("header ")
    body = {"header": header}
    resp = await api.raw("PUT", f"/channels/{channel['id']}/patch", cast.actor.token, json=body)

    async def effect() -> bool:
        return bool(
            (await get(api, cast.admin.token, f"/channels/{channel['id']}"))["header"] == header
        )

    return resp, effect


@door("manage_public_channel_properties", "channel_user")
async def patch_public_channel(api: API, cast: Cast) -> Attempt:
    return await _patch_channel(api, cast, cast.public)


@door("manage_private_channel_properties", "channel_user")
async def patch_private_channel(api: API, cast: Cast) -> Attempt:
    return await _patch_channel(api, cast, cast.private)


async def _archive(api: API, cast: Cast, type_: str) -> Attempt:
    channel = await channel_with(api, cast, type_, cast.actor)
    resp = await api.raw("DELETE", f"/channels/{channel['id']}", cast.actor.token)

    async def effect() -> bool:
        return bool((await get(api, cast.admin.token, f"/channels/{channel['id']}"))["delete_at"])

    return resp, effect


@door("delete_public_channel", "channel_user")
async def archive_public_channel(api: API, cast: Cast) -> Attempt:
    return await _archive(api, cast, "O")


@door("delete_private_channel", "channel_user")
async def archive_private_channel(api: API, cast: Cast) -> Attempt:
    return await _archive(api, cast, "P")


async def _add_member(api: API, cast: Cast, type_: str) -> Attempt:
    channel = await channel_with(api, cast, type_, cast.actor)
    newcomer = await team_member(api, cast)
    body = {"user_id": newcomer.id}
    resp = await api.raw("POST", f"/channels/{channel['id']}/members", cast.actor.token, json=body)

    async def effect() -> bool:
        return await is_member(api, cast, channel["id"], newcomer.id)

    return resp, effect


@door("manage_public_channel_members", "channel_user")
async def add_to_public_channel(api: API, cast: Cast) -> Attempt:
    return await _add_member(api, cast, "O")


@door("manage_private_channel_members", "channel_user")
async def add_to_private_channel(api: API, cast: Cast) -> Attempt:
    return await _add_member(api, cast, "P")


@door("manage_channel_roles", "channel_user")
async def make_channel_admin(api: API, cast: Cast) -> Attempt:
    member = await team_member(api, cast)
    channel = await channel_with(api, cast, "O", cast.actor, member)
    path = f"/channels/{channel['id']}/members/{member.id}/roles"
    resp = await api.raw(
        "PUT", path, cast.actor.token, json={"roles": "channel_user channel_admin"}
    )

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/channels/{channel['id']}/members/{member.id}")
        return bool(found["scheme_admin"])

    return resp, effect


@door("read_channel_content", "channel_user")
async def read_private_channel_posts(api: API, cast: Cast) -> Attempt:
    resp = await api.raw("GET", f"/channels/{cast.private['id']}/posts", cast.actor.token)
    return resp, None


@door("read_channel_content", "channel_user")
async def pin_post(api: API, cast: Cast) -> Attempt:
    target = await post(api, cast.other.token, cast.private["id"])
    resp = await api.raw("POST", f"/posts/{target['id']}/pin", cast.actor.token)

    async def effect() -> bool:
        return bool((await get(api, cast.admin.token, f"/posts/{target['id']}"))["is_pinned"])

    return resp, effect


# Team scope: the actor's `team_user` role


@door("read_public_channel", "team_user", named="read_channel_content")
async def read_public_channel_as_non_member(api: API, cast: Cast) -> Attempt:
    channel = await channel_with(api, cast, "O")
    resp = await api.raw("GET", f"/channels/{channel['id']}/posts", cast.actor.token)
    return resp, None


@door("join_public_channels", "team_user")
async def join_public_channel(api: API, cast: Cast) -> Attempt:
    channel = await channel_with(api, cast, "O")
    body = {"user_id": cast.actor.id}
    resp = await api.raw("POST", f"/channels/{channel['id']}/members", cast.actor.token, json=body)

    async def effect() -> bool:
        return await is_member(api, cast, channel["id"], cast.actor.id)

    return resp, effect


@door("list_team_channels", "team_user")
async def list_team_channels(api: API, cast: Cast) -> Attempt:
    resp = await api.raw("GET", f"/teams/{cast.team['id']}/channels", cast.actor.token)
    return resp, None


async def _create_channel(api: API, cast: Cast, type_: str) -> Attempt:
    name = fresh_name("door")
    body = {"team_id": cast.team["id"], "name": name, "display_name": name, "type": type_}
    resp = await api.raw("POST", "/channels", cast.actor.token, json=body)

    async def effect() -> bool:
        path = f"/teams/{cast.team['id']}/channels/name/{name}"
        return (await api.raw("GET", path, cast.admin.token)).status_code == 200

    return resp, effect


@door("create_public_channel", "team_user")
async def create_public_channel(api: API, cast: Cast) -> Attempt:
    return await _create_channel(api, cast, "O")


@door("create_private_channel", "team_user")
async def create_private_channel(api: API, cast: Cast) -> Attempt:
    return await _create_channel(api, cast, "P")


@door("view_team", "team_user")
async def list_team_members(api: API, cast: Cast) -> Attempt:
    resp = await api.raw("GET", f"/teams/{cast.team['id']}/members", cast.actor.token)
    return resp, None


@door("view_team", "team_user")
async def list_threads(api: API, cast: Cast) -> Attempt:
    path = f"/users/{cast.actor.id}/teams/{cast.team['id']}/threads"
    return await api.raw("GET", path, cast.actor.token), None


@door("view_team", "team_user")
async def list_drafts(api: API, cast: Cast) -> Attempt:
    path = f"/users/{cast.actor.id}/teams/{cast.team['id']}/drafts"
    return await api.raw("GET", path, cast.actor.token), None


@door("add_user_to_team", "team_user")
async def add_user_to_team(api: API, cast: Cast) -> Attempt:
    newcomer = await api.new_user(cast.admin.token, prefix="newcomer")
    body = {"team_id": cast.team["id"], "user_id": newcomer.id}
    resp = await api.raw("POST", f"/teams/{cast.team['id']}/members", cast.actor.token, json=body)

    async def effect() -> bool:
        return await in_team(api, cast, cast.team["id"], newcomer.id)

    return resp, effect


@door("remove_user_from_team", "team_user")
async def remove_user_from_team(api: API, cast: Cast) -> Attempt:
    member = await team_member(api, cast)
    path = f"/teams/{cast.team['id']}/members/{member.id}"
    resp = await api.raw("DELETE", path, cast.actor.token)

    async def effect() -> bool:
        return not await in_team(api, cast, cast.team["id"], member.id)

    return resp, effect


@door("manage_team", "team_user")
async def patch_team(api: API, cast: Cast) -> Attempt:
    description = fresh_name("about ")
    path = f"/teams/{cast.team['id']}/patch"
    resp = await api.raw("PUT", path, cast.actor.token, json={"description": description})

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/teams/{cast.team['id']}")
        return bool(found["description"] == description)

    return resp, effect


@door("manage_team", "team_user")
async def restore_channel(api: API, cast: Cast) -> Attempt:
    channel = await channel_with(api, cast, "O", cast.actor)
    await api.call("DELETE", f"/channels/{channel['id']}", token=cast.other.token)
    resp = await api.raw("POST", f"/channels/{channel['id']}/restore", cast.actor.token)

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/channels/{channel['id']}")
        return found["delete_at"] == 0

    return resp, effect


@door("manage_team_roles", "team_user")
async def make_team_admin(api: API, cast: Cast) -> Attempt:
    member = await team_member(api, cast)
    path = f"/teams/{cast.team['id']}/members/{member.id}/roles"
    resp = await api.raw("PUT", path, cast.actor.token, json={"roles": "team_user team_admin"})

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/teams/{cast.team['id']}/members/{member.id}")
        return bool(found["scheme_admin"])

    return resp, effect


@door("create_post_public", "team_user", named="create_post")
async def draft_in_public_channel_as_non_member(api: API, cast: Cast) -> Attempt:
    channel = await channel_with(api, cast, "O")
    body = {"channel_id": channel["id"], "message": "draft", "user_id": cast.actor.id}
    resp = await api.raw("POST", "/drafts", cast.actor.token, json=body)
    return resp, None


# System scope: the actor's `system_user` role


@door("create_team", "system_user")
async def create_team(api: API, cast: Cast) -> Attempt:
    name = fresh_name("doorteam")
    body = {"name": name, "display_name": name, "type": "O"}
    resp = await api.raw("POST", "/teams", cast.actor.token, json=body)

    async def effect() -> bool:
        return (await api.raw("GET", f"/teams/name/{name}", cast.admin.token)).status_code == 200

    return resp, effect


async def _join_team(api: API, cast: Cast, type_: str) -> Attempt:
    team = await api.new_team(cast.admin.token, type_=type_)
    body = {"team_id": team["id"], "user_id": cast.actor.id}
    resp = await api.raw("POST", f"/teams/{team['id']}/members", cast.actor.token, json=body)

    async def effect() -> bool:
        return await in_team(api, cast, team["id"], cast.actor.id)

    return resp, effect


@door("join_public_teams", "system_user", named="add_user_to_team")
async def join_open_team(api: API, cast: Cast) -> Attempt:
    return await _join_team(api, cast, "O")


@door("join_private_teams", "system_user", named="add_user_to_team")
async def join_invite_only_team(api: API, cast: Cast) -> Attempt:
    return await _join_team(api, cast, "I")


@door("list_private_teams", "system_user", refused=200)
async def list_invite_only_teams(api: API, cast: Cast) -> Attempt:
    team = await api.new_team(cast.admin.token, type_="I")
    resp = await api.raw("GET", "/teams?per_page=200", cast.actor.token)

    async def effect() -> bool:
        return any(t["id"] == team["id"] for t in resp.json())

    return resp, effect


@door("read_other_users_teams", "system_user")
async def teams_of_another_user(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", f"/users/{cast.other.id}/teams", cast.actor.token), None


@door("create_direct_channel", "system_user")
async def create_direct_channel(api: API, cast: Cast) -> Attempt:
    peer = await api.new_user(cast.admin.token, prefix="peer")
    resp = await api.raw(
        "POST", "/channels/direct", cast.actor.token, json=[cast.actor.id, peer.id]
    )

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/users/{peer.id}/channels")
        return any(c["type"] == "D" for c in found)

    return resp, effect


@door("create_group_channel", "system_user")
async def create_group_channel(api: API, cast: Cast) -> Attempt:
    peers = [await api.new_user(cast.admin.token, prefix="peer") for _ in range(2)]
    ids = [cast.actor.id, *(p.id for p in peers)]
    resp = await api.raw("POST", "/channels/group", cast.actor.token, json=ids)

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/users/{peers[0].id}/channels")
        return any(c["type"] == "G" for c in found)

    return resp, effect


@door("manage_system", "system_user")
async def direct_channel_between_others(api: API, cast: Cast) -> Attempt:
    peers = [await api.new_user(cast.admin.token, prefix="peer") for _ in range(2)]
    resp = await api.raw("POST", "/channels/direct", cast.actor.token, json=[p.id for p in peers])

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/users/{peers[0].id}/channels")
        return any(c["type"] == "D" for c in found)

    return resp, effect


@door("manage_system", "system_user")
async def list_every_role(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", "/roles", cast.actor.token), None


@door("manage_system", "system_user")
async def operator_console(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", "/hubbub/console", cast.actor.token), None


@door("reload_config", "system_user")
async def reload_configuration(api: API, cast: Cast) -> Attempt:
    return await api.raw("POST", "/config/reload", cast.actor.token), None


@door("recycle_database_connections", "system_user")
async def recycle_database(api: API, cast: Cast) -> Attempt:
    return await api.raw("POST", "/database/recycle", cast.actor.token), None


async def _nickname_effect(api: API, cast: Cast, user: User, nickname: str) -> Effect:
    async def effect() -> bool:
        return bool((await get(api, cast.admin.token, f"/users/{user.id}"))["nickname"] == nickname)

    return effect


@door("edit_other_users", "system_user")
async def patch_another_user(api: API, cast: Cast) -> Attempt:
    nickname = fresh_name("nick")
    path = f"/users/{cast.other.id}/patch"
    resp = await api.raw("PUT", path, cast.actor.token, json={"nickname": nickname})
    return resp, await _nickname_effect(api, cast, cast.other, nickname)


@door("edit_other_users", "system_user")
async def save_anothers_preferences(api: API, cast: Cast) -> Attempt:
    value = fresh_name("v")
    pref = {"user_id": cast.other.id, "category": "door", "name": "test", "value": value}
    path = f"/users/{cast.other.id}/preferences"
    resp = await api.raw("PUT", path, cast.actor.token, json=[pref])

    async def effect() -> bool:
        path = f"/users/{cast.other.id}/preferences/door"
        found = await api.raw("GET", path, cast.other.token)
        return found.status_code == 200 and any(p["value"] == value for p in found.json())

    return resp, effect


@door("edit_other_users", "system_user")
async def set_anothers_status(api: API, cast: Cast) -> Attempt:
    body = {"user_id": cast.other.id, "status": "dnd"}
    resp = await api.raw("PUT", f"/users/{cast.other.id}/status", cast.actor.token, json=body)

    async def effect() -> bool:
        status = (await get(api, cast.admin.token, f"/users/{cast.other.id}/status"))["status"]
        if status == "dnd":  # put it back for the next attempt
            body = {"user_id": cast.other.id, "status": "online"}
            await api.call(
                "PUT", f"/users/{cast.other.id}/status", token=cast.other.token, json=body
            )
        return bool(status == "dnd")

    return resp, effect


@door("edit_other_users", "system_user")
async def anothers_sessions(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", f"/users/{cast.other.id}/sessions", cast.actor.token), None


@door("edit_other_users", "system_user")
async def anothers_channel_memberships(api: API, cast: Cast) -> Attempt:
    path = f"/users/{cast.other.id}/teams/{cast.team['id']}/channels/members"
    return await api.raw("GET", path, cast.actor.token), None


@door("edit_other_users", "system_user")
async def anothers_team_memberships(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", f"/users/{cast.other.id}/teams/members", cast.actor.token), None


@door("edit_other_users", "system_user")
async def anothers_sidebar(api: API, cast: Cast) -> Attempt:
    path = f"/users/{cast.other.id}/teams/{cast.team['id']}/channels/categories"
    return await api.raw("GET", path, cast.actor.token), None


@door("edit_other_users", "system_user")
async def anothers_threads(api: API, cast: Cast) -> Attempt:
    path = f"/users/{cast.other.id}/teams/{cast.team['id']}/threads"
    return await api.raw("GET", path, cast.actor.token), None


@door("edit_other_users", "system_user")
async def reset_anothers_avatar(api: API, cast: Cast) -> Attempt:
    return await api.raw("DELETE", f"/users/{cast.other.id}/image", cast.actor.token), None


# `manage_roles` cannot be patched into or out of a role (Mattermost's rule): the walk gives the
# actor the role that has it instead.
@door("manage_roles", "system_admin", assign=True)
async def assign_system_role(api: API, cast: Cast) -> Attempt:
    target = await api.new_user(cast.admin.token, prefix="target")
    body = {"roles": "system_user system_post_all"}
    resp = await api.raw("PUT", f"/users/{target.id}/roles", cast.actor.token, json=body)

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/users/{target.id}")
        return "system_post_all" in found["roles"].split()

    return resp, effect


@door("create_user_access_token", "system_user")
async def create_own_token(api: API, cast: Cast) -> Attempt:
    description = fresh_name("token ")
    path = f"/users/{cast.actor.id}/tokens"
    resp = await api.raw("POST", path, cast.actor.token, json={"description": description})

    async def effect() -> bool:
        found = await get(api, cast.admin.token, f"/users/{cast.actor.id}/tokens")
        return any(t["description"] == description for t in found)

    return resp, effect


@door("read_user_access_token", "system_user")
async def list_own_tokens(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", f"/users/{cast.actor.id}/tokens", cast.actor.token), None


@door("read_user_access_token", "system_user")
async def read_own_token(api: API, cast: Cast) -> Attempt:
    token = await token_for(api, cast, cast.actor)
    return await api.raw("GET", f"/users/tokens/{token['id']}", cast.actor.token), None


@door("revoke_user_access_token", "system_user")
async def revoke_own_token(api: API, cast: Cast) -> Attempt:
    token = await token_for(api, cast, cast.actor)
    body = {"token_id": token["id"]}
    resp = await api.raw("POST", "/users/tokens/revoke", cast.actor.token, json=body)

    async def effect() -> bool:
        found = await api.raw("GET", f"/users/tokens/{token['id']}", cast.admin.token)
        return found.status_code == 404

    return resp, effect


@door("create_bot", "system_user")
async def create_bot(api: API, cast: Cast) -> Attempt:
    username = fresh_name("doorbot")
    resp = await api.raw("POST", "/bots", cast.actor.token, json={"username": username})

    async def effect() -> bool:
        found = await api.raw("GET", f"/users/username/{username}", cast.admin.token)
        return found.status_code == 200

    return resp, effect


@door("read_bots", "system_user", also=("create_bot",))
async def read_own_bot(api: API, cast: Cast) -> Attempt:
    bot = await api.call(
        "POST", "/bots", token=cast.actor.token, json={"username": fresh_name("bot")}, expect=201
    )
    return await api.raw("GET", f"/bots/{bot['user_id']}", cast.actor.token), None


@door("read_others_bots", "system_user", refused=200, also=("read_bots",))
async def list_anothers_bots(api: API, cast: Cast) -> Attempt:
    bot = await api.call(
        "POST", "/bots", token=cast.admin.token, json={"username": fresh_name("bot")}, expect=201
    )
    resp = await api.raw("GET", "/bots?per_page=200", cast.actor.token)

    async def effect() -> bool:
        return any(b["user_id"] == bot["user_id"] for b in resp.json())

    return resp, effect


async def _bot_token(api: API, cast: Cast, owner: User) -> Attempt:
    bot = await api.call(
        "POST", "/bots", token=owner.token, json={"username": fresh_name("bot")}, expect=201
    )
    path = f"/users/{bot['user_id']}/tokens"
    resp = await api.raw("POST", path, cast.actor.token, json={"description": "bot"})

    async def effect() -> bool:
        return bool(await get(api, cast.admin.token, path))

    return resp, effect


@door("manage_bots", "system_user", also=("create_bot", "create_user_access_token"))
async def token_for_own_bot(api: API, cast: Cast) -> Attempt:
    return await _bot_token(api, cast, cast.actor)


@door("manage_others_bots", "system_user", also=("create_user_access_token",))
async def token_for_anothers_bot(api: API, cast: Cast) -> Attempt:
    return await _bot_token(api, cast, cast.admin)


@door("read_jobs", "system_user")
async def list_jobs(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", "/jobs", cast.actor.token), None


@door("manage_jobs", "system_user")
async def create_job(api: API, cast: Cast) -> Attempt:
    resp = await api.raw("POST", "/jobs", cast.actor.token, json={"type": "cleanup"})

    async def effect() -> bool:
        found = await get(api, cast.admin.token, "/jobs/type/cleanup")
        return resp.status_code == 201 and any(j["id"] == resp.json()["id"] for j in found)

    return resp, effect


@door("create_post_ephemeral", "system_user")
async def ephemeral_post(api: API, cast: Cast) -> Attempt:
    body = {"user_id": cast.other.id, "post": {"channel_id": cast.public["id"], "message": "psst"}}
    return await api.raw("POST", "/posts/ephemeral", cast.actor.token, json=body), None


@door("sysconsole_read_environment_high_availability", "system_user")
async def cluster_status(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", "/cluster/status", cast.actor.token), None


@door("sysconsole_read_plugins", "system_user")
async def plugins(api: API, cast: Cast) -> Attempt:
    return await api.raw("GET", "/plugins", cast.actor.token), None


@door("sysconsole_read_user_management_users", "system_user", refused=200)
async def active_user_count(api: API, cast: Cast) -> Attempt:
    resp = await api.raw("GET", "/limits/server", cast.actor.token)

    async def effect() -> bool:
        return bool(resp.json()["activeUserCount"] > 0)

    return resp, effect


@door("sysconsole_write_user_management_permissions", "system_user")
async def patch_scheme_role(api: API, cast: Cast) -> Attempt:
    return await patch_role(api, cast, "run_member", "run_create")


# Like `manage_roles`, Mattermost lets no patch add or remove this one; without the admin role
# the general check (`sysconsole_write_user_management_permissions`) refuses first.
@door(
    "sysconsole_write_user_management_system_roles",
    "system_admin",
    assign=True,
    named="sysconsole_write_user_management_permissions",
)
async def patch_system_role(api: API, cast: Cast) -> Attempt:
    return await patch_role(api, cast, "system_post_all_public", "use_group_mentions")


@door("create_emojis", "system_user")
async def create_emoji(api: API, cast: Cast) -> Attempt:
    resp = await upload_emoji(api, cast, cast.actor)

    async def effect() -> bool:
        return resp.status_code < 300  # a refused upload has no id to look up

    return resp, effect


async def _delete_emoji(api: API, cast: Cast, owner: User) -> Attempt:
    made = await upload_emoji(api, cast, owner)
    assert made.status_code < 300, made.text
    emoji_id = made.json()["id"]
    resp = await api.raw("DELETE", f"/emoji/{emoji_id}", cast.actor.token)

    async def effect() -> bool:
        return (await api.raw("GET", f"/emoji/{emoji_id}", cast.admin.token)).status_code == 404

    return resp, effect


@door("delete_emojis", "system_user")
async def delete_own_emoji(api: API, cast: Cast) -> Attempt:
    return await _delete_emoji(api, cast, cast.actor)


@door("delete_others_emojis", "system_user", also=("delete_emojis",))
async def delete_anothers_emoji(api: API, cast: Cast) -> Attempt:
    return await _delete_emoji(api, cast, cast.other)


# The walk


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"MM_SERVICESETTINGS_ENABLECUSTOMEMOJI": "true"}


SCOPES = ("channel", "team", "system")


@pytest.mark.parametrize("scope", SCOPES)
async def test_doors(api: API, admin: User, scope: str) -> None:
    """Every door whose role is of `scope`, one after another on one node and cast (each door
    makes the fresh data it needs); the first door that does not hold fails the test by name."""
    cast = await make_cast(api, admin)
    doors = [d for d in DOORS if d.role.startswith(scope + "_")]
    assert doors
    for d in doors:
        await walk_door(api, cast, d)


# Permission names that appear in the code only as the name in an error, not as a check.
ERROR_NAMES_ONLY: set[str] = set()


def test_every_checked_permission_has_a_door() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "hubbub"
    used: set[str] = set()
    for path in src.rglob("*.py"):
        if path.name in {"role_catalog.py"}:
            continue
        used |= {m for m in re.findall(r'"([a-z_]+)"', path.read_text()) if m in KNOWN_PERMISSIONS}
    covered = {d.permission for d in DOORS}
    missing = sorted(used - covered - ERROR_NAMES_ONLY)
    assert not missing, f"permissions checked in src/hubbub without a door in this table: {missing}"
