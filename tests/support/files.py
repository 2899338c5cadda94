"""Uploading files through the API in tests: a team and channel to upload into (`World`), small
images made on the fly (`png`), and the upload calls."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from tests.support.api import API, User


@dataclass
class World:
    admin: User
    member: User
    outsider: User
    team: dict[str, Any]
    channel: dict[str, Any]


async def make_world(api: API, admin: User) -> World:
    """A team with a public channel: `admin` and `member` belong to both, `outsider` only to
    the team."""
    member = await api.new_user(admin.token, prefix="member")
    outsider = await api.new_user(admin.token, prefix="outsider")
    team = await api.new_team(admin.token)
    await api.add_to_team(admin.token, team["id"], member.id)
    await api.add_to_team(admin.token, team["id"], outsider.id)
    channel = await api.new_channel(admin.token, team["id"])
    await api.add_to_channel(admin.token, channel["id"], member.id)
    return World(admin, member, outsider, team, channel)


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "red" if mode != "1" else 0).save(out, "PNG")
    return out.getvalue()


async def upload(
    api: API,
    token: str,
    channel_id: str,
    files: list[tuple[str, bytes]],
    client_ids: list[str] | None = None,
) -> httpx.Response:
    data: dict[str, Any] = {"channel_id": channel_id}
    if client_ids is not None:
        data["client_ids"] = client_ids
    return await api.raw(
        "POST",
        "/files",
        token,
        data=data,
        files=[("files", (name, content)) for name, content in files],
    )


async def upload_one(api: API, token: str, channel_id: str, name: str, content: bytes) -> Any:
    resp = await upload(api, token, channel_id, [(name, content)])
    assert resp.status_code == 201, resp.text
    return resp.json()["file_infos"][0]


def error_id(resp: httpx.Response) -> str:
    assert resp.headers["content-type"] == "application/json"
    return str(resp.json()["id"])
