"""The permission table's machinery (tests/api/test_permission_table.py): a door is an endpoint
that needs one permission, the role of the actor that grants it, and an attempt that makes fresh
data, sends the request and says how to see its effect; `walk_door` takes the permission away,
gives it, takes it again, and checks the answers and the effects each time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from hubbub.services.role_catalog import BUILT_IN_ROLES
from tests.support.api import API, User
from tests.support.authz import (
    Cast,
    fresh_name,
    post,
    role,
    set_role_permissions,
    set_user_roles,
)
from tests.support.files import png

Effect = Callable[[], Awaitable[bool]]
# The answer, and how to see whether the change happened (None: a read, the answer is all).
Attempt = tuple[httpx.Response, Effect | None]


@dataclass(frozen=True)
class Door:
    permission: str
    role: str  # the actor's role the walk takes the permission from and gives it to
    name: str  # what the door is, for the test id
    attempt: Callable[[API, Cast], Awaitable[Attempt]]
    refused: int = 403  # 200: a listing that hides what the permission would show
    also: tuple[str, ...] = field(default=())  # granted throughout (a door behind another)
    named: str = ""  # the permission the 403 names, when not `permission` (Mattermost's)
    assign: bool = False  # grant by giving the actor `role` (for an unpatchable permission)


DOORS: list[Door] = []  # filled by the @door definitions of the test module


def door(
    permission: str,
    role_name: str,
    refused: int = 403,
    also: tuple[str, ...] = (),
    named: str = "",
    assign: bool = False,
) -> Callable[
    [Callable[[API, Cast], Awaitable[Attempt]]], Callable[[API, Cast], Awaitable[Attempt]]
]:
    def register(
        fn: Callable[[API, Cast], Awaitable[Attempt]],
    ) -> Callable[[API, Cast], Awaitable[Attempt]]:
        DOORS.append(
            Door(permission, role_name, fn.__name__, fn, refused, also, named or permission, assign)
        )
        return fn

    return register


async def get(api: API, token: str, path: str) -> Any:
    return await api.call("GET", path, token=token)


async def is_member(api: API, cast: Cast, channel_id: str, user_id: str) -> bool:
    resp = await api.raw("GET", f"/channels/{channel_id}/members/{user_id}", cast.admin.token)
    return resp.status_code == 200


async def in_team(api: API, cast: Cast, team_id: str, user_id: str) -> bool:
    resp = await api.raw("GET", f"/teams/{team_id}/members/{user_id}", cast.admin.token)
    return resp.status_code == 200 and resp.json()["delete_at"] == 0


async def post_message(api: API, cast: Cast, post_id: str) -> str:
    found = await api.raw("GET", f"/posts/{post_id}", cast.admin.token)
    return str(found.json()["message"]) if found.status_code == 200 else "<deleted>"


async def reactions_of(api: API, cast: Cast, post_id: str) -> set[str]:
    found = await get(api, cast.admin.token, f"/posts/{post_id}/reactions")
    return {r["user_id"] for r in found or []}


async def _refused(api: API, cast: Cast, d: Door, phase: str) -> None:
    resp, effect = await d.attempt(api, cast)
    assert resp.status_code == d.refused, f"{d.name} {phase}: {resp.status_code} {resp.text}"
    if d.refused == 403:
        body = resp.json()
        assert body["id"] == "api.context.permissions.app_error", f"{d.name}: {body}"
        assert body["message"].endswith(f" {d.named}."), f"{d.name}: {body['message']}"
    if effect is not None:
        assert not await effect(), f"{d.name} {phase}: refused, but the change happened"


async def _allowed(api: API, cast: Cast, d: Door) -> None:
    resp, effect = await d.attempt(api, cast)
    assert resp.status_code < 300, f"{d.name} granted: {resp.status_code} {resp.text}"
    if effect is not None:
        assert await effect(), f"{d.name} granted: answered {resp.status_code}, nothing changed"


async def walk_door(api: API, cast: Cast, d: Door) -> None:
    assert d.role in BUILT_IN_ROLES
    if d.assign:
        await _walk(api, cast, d, *_assigning(api, cast, d))
        return
    admin = cast.admin
    target = await role(api, admin.token, d.role)
    default = list(target["permissions"])
    base = set(default) | set(d.also)

    async def grant() -> None:
        await set_role_permissions(api, admin.token, target["id"], sorted(base | {d.permission}))

    async def take() -> None:
        await set_role_permissions(api, admin.token, target["id"], sorted(base - {d.permission}))

    try:
        await _walk(api, cast, d, grant, take)
    finally:
        await set_role_permissions(api, admin.token, target["id"], default)


def _assigning(
    api: API, cast: Cast, d: Door
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    async def grant() -> None:
        await set_user_roles(api, cast.admin.token, cast.actor.id, f"system_user {d.role}")

    async def take() -> None:
        await set_user_roles(api, cast.admin.token, cast.actor.id, "system_user")

    return grant, take


async def _walk(
    api: API,
    cast: Cast,
    d: Door,
    grant: Callable[[], Awaitable[None]],
    take: Callable[[], Awaitable[None]],
) -> None:
    await take()
    await _refused(api, cast, d, "without the permission")
    await grant()
    await _allowed(api, cast, d)
    await take()
    await _refused(api, cast, d, "after losing it again")


async def token_for(api: API, cast: Cast, user: User) -> dict[str, Any]:
    found: dict[str, Any] = await api.call(
        "POST",
        f"/users/{user.id}/tokens",
        token=cast.admin.token,
        json={"description": "t"},
        expect=201,
    )
    return found


async def patch_role(api: API, cast: Cast, name: str, permission: str) -> Attempt:
    target = await role(api, cast.admin.token, name)
    toggled = sorted(set(target["permissions"]) ^ {permission})
    path = f"/roles/{target['id']}/patch"
    resp = await api.raw("PUT", path, cast.actor.token, json={"permissions": toggled})

    async def effect() -> bool:
        now = await role(api, cast.admin.token, name)
        changed = set(now["permissions"]) != set(target["permissions"])
        if changed:
            await set_role_permissions(api, cast.admin.token, now["id"], target["permissions"])
        return changed

    return resp, effect


async def upload_emoji(api: API, cast: Cast, user: User) -> httpx.Response:
    emoji = {"name": fresh_name("emo"), "creator_id": user.id}
    return await api.raw(
        "POST",
        "/emoji",
        user.token,
        data={"emoji": orjson.dumps(emoji).decode()},
        files={"image": ("e.png", png(8, 8))},
    )


async def reacted(api: API, cast: Cast, user: User) -> str:
    target = await post(api, cast.other.token, cast.public["id"])
    body = {"user_id": user.id, "post_id": target["id"], "emoji_name": "smile"}
    await api.call("POST", "/reactions", token=user.token, json=body, expect=201)
    return str(target["id"])
