"""An in-process API client for tests: an httpx client over ASGI plus a few shortcuts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import httpx

_counter = itertools.count()
PASSWORD = "password-123"


@dataclass
class User:
    id: str
    username: str
    token: str
    data: dict[str, Any]


class API:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        expect: int | None = 200,
        **kwargs: Any,
    ) -> Any:
        """Sends a request under /api/v4 and returns the parsed JSON (asserting `expect`)."""
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        resp = await self.client.request(
            method, "/api/v4" + path, json=json, headers=headers, **kwargs
        )
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        if resp.status_code == 304 or not resp.content:
            return resp
        assert resp.headers["content-type"] == "application/json", resp.headers
        body = resp.json()
        if resp.status_code >= 400:
            assert set(body) >= {"id", "message", "detailed_error", "request_id", "status_code"}
            assert body["status_code"] == resp.status_code
        return body

    async def raw(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, "/api/v4" + path, headers=headers, **kw)

    async def new_user(self, admin_token: str | None = None, prefix: str = "user") -> User:
        """Creates a user (as `admin_token` if given) and logs it in."""
        n = next(_counter)
        username = f"{prefix}{n}"
        data = await self.call(
            "POST",
            "/users",
            token=admin_token,
            json={"email": f"{username}@example.com", "username": username, "password": PASSWORD},
            expect=201,
        )
        resp = await self.client.post(
            "/api/v4/users/login", json={"login_id": username, "password": PASSWORD}
        )
        assert resp.status_code == 200, resp.text
        return User(id=data["id"], username=username, token=resp.headers["Token"], data=data)

    async def new_team(
        self, token: str, name: str | None = None, type_: str = "O"
    ) -> dict[str, Any]:
        """Creates a team (the creator becomes its admin member)."""
        name = name or f"team{next(_counter)}"
        return await self.call(
            "POST",
            "/teams",
            token=token,
            json={"name": name, "display_name": name.title(), "type": type_},
            expect=201,
        )

    async def add_to_team(self, token: str, team_id: str, user_id: str) -> Any:
        return await self.call(
            "POST",
            f"/teams/{team_id}/members",
            token=token,
            json={"team_id": team_id, "user_id": user_id},
            expect=201,
        )

    async def new_channel(
        self, token: str, team_id: str, type_: str = "O", name: str | None = None
    ) -> dict[str, Any]:
        """Creates a public (`O`) or private (`P`) channel; the creator becomes a member."""
        name = name or f"chan{next(_counter)}"
        return await self.call(
            "POST",
            "/channels",
            token=token,
            json={"team_id": team_id, "name": name, "display_name": name.title(), "type": type_},
            expect=201,
        )

    async def add_to_channel(self, token: str, channel_id: str, user_id: str) -> Any:
        return await self.call(
            "POST",
            f"/channels/{channel_id}/members",
            token=token,
            json={"user_id": user_id},
            expect=201,
        )
