"""The fan-out benchmark's fixture on a fresh hubbub: an admin, a team, a channel, N members.

Everything goes through the public REST API, as a real deployment would be set up. Members get
personal access tokens (created by the admin) rather than logging in: a login verifies an argon2
hash, which would double the setup time and tell nothing about fan-out. Team and channel
membership use Mattermost's batch forms when the server has them and fall back to one request per
user otherwise, with at most `concurrency` requests in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

PASSWORD = "fanout-bench-password"
BATCH = 100


@dataclass(frozen=True)
class Fixture:
    admin_token: str
    team_id: str
    channel_id: str
    user_ids: list[str]
    tokens: list[str]


class SetupError(RuntimeError):
    pass


def server_env(users: int, log_level: str = "INFO", **extra: str) -> dict[str, str]:
    """A benchmark node's settings: personal access tokens on (the fixture's users log in with
    them), a team big enough for `users`, the console log at `log_level`, plus `extra`."""
    return {
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
        "MM_TEAMSETTINGS_MAXUSERSPERTEAM": str(users + 10),
        "MM_LOGSETTINGS_CONSOLELEVEL": log_level,
        **extra,
    }


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    token: str = "",
    json: Any = None,
    expect: tuple[int, ...] = (200, 201),
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await http.request(method, path, json=json, headers=headers)
    if resp.status_code not in expect:
        raise SetupError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
    return resp


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def new_member(http: httpx.AsyncClient, admin: str, i: int) -> tuple[str, str]:
    name = f"fan{i:05d}"
    user = await call(
        http,
        "POST",
        "/users",
        admin,
        {"email": f"{name}@example.com", "username": name, "password": PASSWORD},
    )
    user_id = user.json()["id"]
    token = await call(http, "POST", f"/users/{user_id}/tokens", admin, {"description": "bench"})
    return user_id, token.json()["token"]


async def add_to_team(
    http: httpx.AsyncClient, admin: str, team_id: str, user_ids: list[str], concurrency: int
) -> None:
    chunks = [user_ids[i : i + BATCH] for i in range(0, len(user_ids), BATCH)]
    path = f"/teams/{team_id}/members/batch"
    first = [{"team_id": team_id, "user_id": u} for u in chunks[0]]
    resp = await http.post(path, json=first, headers={"Authorization": f"Bearer {admin}"})
    if resp.status_code in (200, 201):
        for chunk in chunks[1:]:
            body = [{"team_id": team_id, "user_id": u} for u in chunk]
            await call(http, "POST", path, admin, body)
        return
    if resp.status_code not in (400, 404, 405, 501):
        raise SetupError(f"POST {path}: {resp.status_code} {resp.text[:300]}")
    await bounded(
        concurrency,
        [
            partial(
                call,
                http,
                "POST",
                f"/teams/{team_id}/members",
                admin,
                {"team_id": team_id, "user_id": u},
            )
            for u in user_ids
        ],
    )


async def add_to_channel(
    http: httpx.AsyncClient, admin: str, channel_id: str, user_ids: list[str], concurrency: int
) -> None:
    chunks = [user_ids[i : i + BATCH] for i in range(0, len(user_ids), BATCH)]
    path = f"/channels/{channel_id}/members"
    headers = {"Authorization": f"Bearer {admin}"}
    resp = await http.post(path, json={"user_ids": chunks[0]}, headers=headers)
    if resp.status_code in (200, 201) and isinstance(resp.json(), list):
        for chunk in chunks[1:]:
            await call(http, "POST", path, admin, {"user_ids": chunk})
        return
    if resp.status_code not in (200, 201, 400, 404, 405, 501):
        raise SetupError(f"POST {path}: {resp.status_code} {resp.text[:300]}")
    await bounded(
        concurrency,
        [partial(call, http, "POST", path, admin, {"user_id": u}) for u in user_ids],
    )


async def setup_hubbub(http: httpx.AsyncClient, n: int, concurrency: int) -> Fixture:
    """Builds the fixture; `http` has base_url `.../api/v4`."""
    body = {"email": "admin@example.com", "username": "fanadmin", "password": PASSWORD}
    await call(http, "POST", "/users", json=body)  # the first user becomes system admin
    login = await call(
        http, "POST", "/users/login", json={"login_id": "fanadmin", "password": PASSWORD}
    )
    admin = login.headers["Token"]
    team = await call(
        http,
        "POST",
        "/teams",
        admin,
        {"name": "fanout", "display_name": "Fan-out", "type": "O"},
        expect=(201,),
    )
    team_id = team.json()["id"]
    channel = await call(
        http,
        "POST",
        "/channels",
        admin,
        {"team_id": team_id, "name": "fanout-room", "display_name": "Fan-out", "type": "O"},
        expect=(201,),
    )
    channel_id = channel.json()["id"]
    members = await bounded(concurrency, [partial(new_member, http, admin, i) for i in range(n)])
    user_ids = [u for u, _ in members]
    await add_to_team(http, admin, team_id, user_ids, concurrency)
    await add_to_channel(http, admin, channel_id, user_ids, concurrency)
    return Fixture(admin, team_id, channel_id, user_ids, [t for _, t in members])
