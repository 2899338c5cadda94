"""A synchronous REST client for setting up users, teams, channels and posts over plain HTTP,
and the usual cast: an admin and three users (`People`), in a team with a public and a private
channel (`Org`)."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "password-123"
_names = itertools.count()


@dataclass
class Account:
    id: str
    username: str
    token: str


class Rest:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url + "/api/v4", timeout=10)

    def call(
        self, method: str, path: str, token: str | None = None, json: Any = None, expect: int = 200
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = self.http.request(method, path, json=json, headers=headers)
        assert resp.status_code == expect, (
            f"{method} /api/v4{path}: expected {expect}, got {resp.status_code} {resp.text[:500]}"
        )
        return resp.json()

    def user(self, admin: Account | None, prefix: str = "user") -> Account:
        name = f"{prefix}{next(_names)}x{os.getpid()}"
        data = self.call(
            "POST",
            "/users",
            token=admin.token if admin else None,
            json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
            expect=201,
        )
        resp = self.http.post("/users/login", json={"login_id": name, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return Account(id=data["id"], username=name, token=resp.headers["Token"])

    def team(self, owner: Account) -> dict[str, Any]:
        name = f"team{next(_names)}"
        return dict(
            self.call(
                "POST",
                "/teams",
                owner.token,
                {"name": name, "display_name": name.title(), "type": "O"},
                201,
            )
        )

    def join_team(self, owner: Account, team_id: str, user: Account) -> None:
        self.call(
            "POST",
            f"/teams/{team_id}/members",
            owner.token,
            {"team_id": team_id, "user_id": user.id},
            201,
        )

    def channel(self, owner: Account, team_id: str, type_: str = "O") -> dict[str, Any]:
        name = f"chan{next(_names)}"
        return dict(
            self.call(
                "POST",
                "/channels",
                owner.token,
                {"team_id": team_id, "name": name, "display_name": name.title(), "type": type_},
                201,
            )
        )

    def join_channel(self, owner: Account, channel_id: str, user: Account) -> None:
        self.call("POST", f"/channels/{channel_id}/members", owner.token, {"user_id": user.id}, 201)

    def post(self, author: Account, channel_id: str, message: str) -> dict[str, Any]:
        return dict(
            self.call(
                "POST", "/posts", author.token, {"channel_id": channel_id, "message": message}, 201
            )
        )

    def close(self) -> None:
        self.http.close()


@dataclass
class People:
    """The first user (a system admin) and three ordinary users."""

    admin: Account
    alice: Account
    bob: Account
    carol: Account


@dataclass
class Org(People):
    """People in one team; `public` has all four, `private` only admin, alice and bob (carol is
    a team member but not in it)."""

    team: dict[str, Any]
    public: dict[str, Any]
    private: dict[str, Any]


def make_people(rest: Rest) -> People:
    admin = rest.user(None, "admin")
    alice, bob, carol = (rest.user(admin, n) for n in ("alice", "bob", "carol"))
    return People(admin, alice, bob, carol)


def make_org(rest: Rest, people: People | None = None) -> Org:
    p = people or make_people(rest)
    team = rest.team(p.admin)
    for member in (p.alice, p.bob, p.carol):
        rest.join_team(p.admin, team["id"], member)
    public = rest.channel(p.admin, team["id"], "O")
    private = rest.channel(p.admin, team["id"], "P")
    for member in (p.alice, p.bob, p.carol):
        rest.join_channel(p.admin, public["id"], member)
    for member in (p.alice, p.bob):
        rest.join_channel(p.admin, private["id"], member)
    return Org(p.admin, p.alice, p.bob, p.carol, team, public, private)


def status_of(rest: Rest, viewer: Account, user_id: str) -> str:
    """`user_id`'s presence status as `viewer` sees it."""
    return str(rest.call("GET", f"/users/{user_id}/status", viewer.token)["status"])
