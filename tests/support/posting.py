"""Shortcuts for post, thread and reaction tests: a team with a public channel and members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from hubbub.app import Hubbub
from hubbub.store.tables import posts
from tests.support.api import API, User


@dataclass
class World:
    """`admin` (system admin) and `alice` (creator) and `bob` are members of `channel`;
    `carol` is on the team but not in the channel."""

    api: API
    admin: User
    alice: User
    bob: User
    carol: User
    team: dict[str, Any]
    channel: dict[str, Any]

    async def post(
        self, user: User, message: str = "hello", channel_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"channel_id": channel_id or self.channel["id"], "message": message, **extra}
        result: dict[str, Any] = await self.api.call(
            "POST", "/posts", token=user.token, json=body, expect=201
        )
        return result

    async def private_channel(self) -> dict[str, Any]:
        """A private channel with alice and bob (not carol)."""
        channel = await self.api.new_channel(self.alice.token, self.team["id"], "P")
        await self.api.add_to_channel(self.alice.token, channel["id"], self.bob.id)
        return channel


async def make_world(api: API, admin: User, channel_type: str = "O") -> World:
    team = await api.new_team(admin.token)
    alice = await api.new_user(admin.token, prefix="alice")
    bob = await api.new_user(admin.token, prefix="bob")
    carol = await api.new_user(admin.token, prefix="carol")
    for user in (alice, bob, carol):
        await api.add_to_team(admin.token, team["id"], user.id)
    channel = await api.new_channel(alice.token, team["id"], channel_type)
    await api.add_to_channel(alice.token, channel["id"], bob.id)
    await api.add_to_channel(alice.token, channel["id"], admin.id)
    return World(api, admin, alice, bob, carol, team, channel)


async def count_posts(node: Hubbub, **where: Any) -> int:
    query = select(func.count()).select_from(posts)
    for key, value in where.items():
        query = query.where(posts.c[key] == value)
    async with node.db.read() as conn:
        return int((await conn.execute(query)).scalar_one())
