"""Authorization tests' shared cast and helpers (the permission table in `tests/api/` and the
authorization matrix in `tests/authz/`): a team with a public and a private channel and the
people in and around them, and the role calls the tests make as the system admin."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tests.support.api import API, User

_names = itertools.count()


def fresh_name(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


@dataclass
class Cast:
    admin: User  # the first user: system admin, admin of `team`
    actor: User  # a team member in both channels: the one whose permissions tests change
    other: User  # a team member in both channels: owns the data the actor reaches for
    team: dict[str, Any]
    public: dict[str, Any]  # created by `other`
    private: dict[str, Any]  # created by `other`


async def make_cast(api: API, admin: User) -> Cast:
    actor = await api.new_user(admin.token, prefix="actor")
    other = await api.new_user(admin.token, prefix="other")
    team = await api.new_team(admin.token)
    for user in (actor, other):
        await api.add_to_team(admin.token, team["id"], user.id)
    public = await api.new_channel(other.token, team["id"], "O")
    private = await api.new_channel(other.token, team["id"], "P")
    for channel in (public, private):
        await api.add_to_channel(other.token, channel["id"], actor.id)
    return Cast(admin, actor, other, team, public, private)


async def team_member(api: API, cast: Cast) -> User:
    """A new user in the cast's team (in no channel but the default ones)."""
    user = await api.new_user(cast.admin.token, prefix="member")
    await api.add_to_team(cast.admin.token, cast.team["id"], user.id)
    return user


async def channel_with(api: API, cast: Cast, type_: str, *members: User) -> dict[str, Any]:
    """A new channel of the cast's team made by `other`, with `members` added."""
    channel = await api.new_channel(cast.other.token, cast.team["id"], type_)
    for user in members:
        await api.add_to_channel(cast.other.token, channel["id"], user.id)
    return channel


async def post(api: API, token: str, channel_id: str, message: str = "") -> dict[str, Any]:
    body = {"channel_id": channel_id, "message": message or fresh_name("message ")}
    result: dict[str, Any] = await api.call("POST", "/posts", token=token, json=body, expect=201)
    return result


async def role(api: API, admin_token: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = await api.call("GET", f"/roles/name/{name}", token=admin_token)
    return found


async def set_role_permissions(
    api: API, admin_token: str, role_id: str, permissions: list[str]
) -> None:
    await api.call(
        "PUT", f"/roles/{role_id}/patch", token=admin_token, json={"permissions": permissions}
    )


async def set_user_roles(api: API, admin_token: str, user_id: str, roles: str) -> None:
    await api.call("PUT", f"/users/{user_id}/roles", token=admin_token, json={"roles": roles})
