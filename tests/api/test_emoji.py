"""Custom emoji over the API, on SQLite and PostgreSQL: create (multipart), list, look up, search,
image, delete with its permissions, reactions with custom names, `emoji_added`, and Mattermost's
errors for bad names, non-images and oversized uploads."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from hubbub.app import Hubbub
from tests.support.api import API, User

UNKNOWN = "x" * 26


def png(width: int = 16, height: int = 16, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


async def create(
    api: API, user: User, name: str, image: bytes | None = None, expect: int = 200, **extra: Any
) -> Any:
    emoji = {"name": name, "creator_id": user.id, **extra}
    files = {"image": ("e.png", image if image is not None else png(), "image/png")}
    return await api.call(
        "POST",
        "/emoji",
        token=user.token,
        data={"emoji": json.dumps(emoji)},
        files=files,
        expect=expect,
    )


async def test_create_read_search_and_delete(api: API, admin: User, node: Hubbub) -> None:
    user = await api.new_user(admin.token)
    party = await create(api, user, "party-parrot")
    assert set(party) == {"id", "create_at", "update_at", "delete_at", "creator_id", "name"}
    assert party["creator_id"] == user.id and party["delete_at"] == 0
    [added] = node.events.named("emoji_added")
    assert json.loads(added.data["emoji"]) == party
    assert added.broadcast.user_id == "" and added.broadcast.channel_id == ""

    # A large image is shrunk to fit 128x128.
    big = await create(api, user, "big_one", png(400, 200))
    image = await api.raw("GET", f"/emoji/{big['id']}/image", token=user.token)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "max-age=2592000, private"
    assert Image.open(io.BytesIO(image.content)).size == (128, 64)
    small = await api.raw("GET", f"/emoji/{party['id']}/image", token=user.token)
    assert small.content == png()

    assert await api.call("GET", f"/emoji/{party['id']}", token=user.token) == party
    assert await api.call("GET", "/emoji/name/party-parrot", token=user.token) == party
    by_name = await api.call("GET", "/emoji?page=0&per_page=200&sort=name", token=user.token)
    assert [e["name"] for e in by_name] == ["big_one", "party-parrot"]
    paged = await api.call("GET", "/emoji?page=1&per_page=1", token=user.token)
    assert [e["name"] for e in paged] == ["big_one"]  # by creation when not sorted by name
    found = await api.call("GET", "/emoji/autocomplete?name=par", token=user.token)
    assert [e["name"] for e in found] == ["party-parrot"]
    anywhere = await api.call(
        "POST", "/emoji/search", token=user.token, json={"term": "rro", "prefix_only": False}
    )
    assert [e["name"] for e in anywhere] == ["party-parrot"]
    prefix = await api.call(
        "POST", "/emoji/search", token=user.token, json={"term": "rro", "prefix_only": True}
    )
    assert prefix == []
    named = await api.call(
        "POST", "/emoji/names", token=user.token, json=["party-parrot", "nothing"]
    )
    assert [e["name"] for e in named] == ["party-parrot"]

    # Reactions take custom names, and lose them when the emoji goes.
    channel = await _channel_with(api, admin, user)
    post = await api.call(
        "POST",
        "/posts",
        token=user.token,
        json={"channel_id": channel, "message": "hi"},
        expect=201,
    )
    reaction = {"user_id": user.id, "post_id": post["id"], "emoji_name": "party-parrot"}
    await api.call("POST", "/reactions", token=user.token, json=reaction, expect=201)
    unknown = await api.call(
        "POST",
        "/reactions",
        token=user.token,
        json={**reaction, "emoji_name": "no_such_emoji"},
        expect=404,
    )
    assert unknown["id"] == "app.emoji.get_by_name.no_result"

    await api.call("DELETE", f"/emoji/{party['id']}", token=user.token)
    gone = await api.call("GET", f"/emoji/{party['id']}", token=user.token, expect=404)
    assert gone["id"] == "app.emoji.get.no_result"
    await api.call("GET", "/emoji/name/party-parrot", token=user.token, expect=404)
    assert await api.call("GET", f"/posts/{post['id']}/reactions", token=user.token) == []
    # The name is free again.
    await create(api, user, "party-parrot")


async def _channel_with(api: API, admin: User, user: User) -> str:
    team = await api.new_team(admin.token)
    await api.add_to_team(admin.token, team["id"], user.id)
    channel = await api.new_channel(admin.token, team["id"])
    await api.add_to_channel(admin.token, channel["id"], user.id)
    return str(channel["id"])


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "model.emoji.name.app_error"),
        ("x" * 65, "model.emoji.name.app_error"),
        ("has space", "model.emoji.name.app_error"),
        ("semi;colon", "model.emoji.name.app_error"),
        ("smile", "model.emoji.system_emoji_name.app_error"),
        ("+1", "model.emoji.system_emoji_name.app_error"),
        ("thumbsup", "model.emoji.system_emoji_name.app_error"),
    ],
)
async def test_bad_names(api: API, admin: User, name: str, error: str) -> None:
    body = await create(api, admin, name, expect=400)
    assert body["id"] == error


async def test_bad_uploads_and_duplicates(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    await create(api, user, "taken")
    dup = await create(api, user, "taken", expect=400)
    assert dup["id"] == "api.emoji.create.duplicate.app_error"
    not_image = await create(api, user, "text", b"just some text", expect=400)
    assert not_image["id"] == "api.emoji.upload.image.app_error"
    huge_pixels = await create(api, user, "huge", png(1100, 10), expect=400)
    assert huge_pixels["id"] == "api.emoji.upload.large_image.too_large.app_error"
    noisy = Image.frombytes("RGB", (600, 600), bytes(range(256)) * (600 * 600 * 3 // 256 + 1))
    out = io.BytesIO()
    noisy.save(out, "BMP")
    assert len(out.getvalue()) > 512 * 1024
    too_big = await create(api, user, "too_big", out.getvalue(), expect=413)
    assert too_big["id"] == "api.emoji.create.too_large.app_error"
    other = await create(api, user, "someone_else", expect=403, creator_id=admin.id)
    assert other["id"] == "api.emoji.create.other_user.app_error"
    no_image = await api.call(
        "POST",
        "/emoji",
        token=user.token,
        data={"emoji": json.dumps({"name": "n"})},
        files={"other": ("x", b"x")},
        expect=400,
    )
    assert no_image["id"] == "api.context.invalid_body_param.app_error"
    no_json = await api.call(
        "POST",
        "/emoji",
        token=user.token,
        data={"emoji": "{nope"},
        files={"image": ("e.png", png())},
        expect=400,
    )
    assert no_json["id"] == "api.context.invalid_param.app_error"
    not_multipart = await api.call("POST", "/emoji", token=user.token, json={}, expect=400)
    assert not_multipart["id"] == "api.emoji.create.parse.app_error"
    sort = await api.call("GET", "/emoji?sort=size", token=user.token, expect=400)
    assert sort["id"] == "api.context.invalid_url_param.app_error"
    await api.call("GET", "/emoji/autocomplete", token=user.token, expect=400)
    await api.call("POST", "/emoji/search", token=user.token, json={"term": ""}, expect=400)
    many = await api.call(
        "POST", "/emoji/names", token=user.token, json=[f"n{i}" for i in range(201)], expect=400
    )
    assert many["id"] == "api.emoji.get_multiple_by_name_too_many.request_error"
    await api.call("GET", "/emoji/nope", token=user.token, expect=400)
    await api.call("GET", f"/emoji/{UNKNOWN}/image", token=user.token, expect=404)
    await api.call("GET", "/emoji", expect=401)


async def test_delete_permissions(api: API, admin: User) -> None:
    owner = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    mine = await create(api, owner, "mine")
    denied = await api.call("DELETE", f"/emoji/{mine['id']}", token=other.token, expect=403)
    assert denied["id"] == "api.context.permissions.app_error"
    # A system admin has delete_others_emojis.
    await api.call("DELETE", f"/emoji/{mine['id']}", token=admin.token)
    await api.call("DELETE", f"/emoji/{mine['id']}", token=admin.token, expect=404)
    # Without create_emojis in the system role (an admin patched it away), creating is 403.
    role = await api.call("GET", "/roles/name/system_user", token=admin.token)
    kept = [p for p in role["permissions"] if p not in ("create_emojis", "delete_emojis")]
    await api.call(
        "PUT", f"/roles/{role['id']}/patch", token=admin.token, json={"permissions": kept}
    )
    try:
        body = await create(api, other, "not_allowed", expect=403)
        assert body["id"] == "api.context.permissions.app_error"
        theirs = await create(api, admin, "admins_own")
        body = await api.call("DELETE", f"/emoji/{theirs['id']}", token=other.token, expect=403)
        assert body["id"] == "api.context.permissions.app_error"
    finally:
        await api.call(
            "PUT",
            f"/roles/{role['id']}/patch",
            token=admin.token,
            json={"permissions": role["permissions"]},
        )


class TestDisabled:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {"MM_SERVICESETTINGS_ENABLECUSTOMEMOJI": "false"}

    async def test_custom_emoji_off(self, api: API, admin: User) -> None:
        config = await api.call("GET", "/config/client?format=old")
        assert config["EnableCustomEmoji"] == "false"
        off = await create(api, admin, "nope", expect=501)
        assert off["id"] == "api.emoji.disabled.app_error"
        await api.call("GET", "/emoji", token=admin.token, expect=501)
