"""Synced drafts over the API, on SQLite and PostgreSQL: upsert by user, channel and thread, the
team's list, deleting, the events (never back to the connection that made the change), and
Mattermost's errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from hubbub.app import Hubbub
from tests.support.api import API, User

UNKNOWN = "x" * 26


@dataclass
class Setup:
    admin: User
    user: User
    other: User
    team: dict[str, Any]
    channel: dict[str, Any]
    dm: dict[str, Any]


@pytest.fixture
async def s(api: API, admin: User) -> Setup:
    user = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    team = await api.new_team(admin.token)
    for member in (user, other):
        await api.add_to_team(admin.token, team["id"], member.id)
    channel = await api.new_channel(admin.token, team["id"], "P")
    await api.add_to_channel(admin.token, channel["id"], user.id)
    dm = await api.call(
        "POST", "/channels/direct", token=user.token, json=[user.id, other.id], expect=201
    )
    return Setup(admin, user, other, team, channel, dm)


def _drafts_url(s: Setup, user: User | None = None) -> str:
    return f"/users/{(user or s.user).id}/teams/{s.team['id']}/drafts"


async def test_upsert_list_and_delete(api: API, s: Setup, node: Hubbub) -> None:
    draft = {"channel_id": s.channel["id"], "message": "half a thought", "props": {"a": 1}}
    created = await api.call(
        "POST",
        "/drafts",
        token=s.user.token,
        json=draft,
        expect=201,
        headers={"Connection-Id": "conn-1"},
    )
    assert created["user_id"] == s.user.id
    assert created["channel_id"] == s.channel["id"]
    assert created["root_id"] == ""
    assert created["message"] == "half a thought"
    assert created["props"] == {"a": 1}
    assert created["create_at"] == created["update_at"] > 0
    assert created["delete_at"] == 0
    assert "file_ids" not in created and "metadata" not in created

    root = await api.call(
        "POST",
        "/posts",
        token=s.user.token,
        json={"channel_id": s.dm["id"], "message": "root"},
        expect=201,
    )
    reply = {"channel_id": s.dm["id"], "root_id": root["id"], "message": "a reply"}
    await api.call("POST", "/drafts", token=s.user.token, json=reply, expect=201)
    updated = await api.call(
        "POST",
        "/drafts",
        token=s.user.token,
        json={**draft, "message": "a whole thought"},
        expect=201,
    )
    assert updated["message"] == "a whole thought"
    assert updated["create_at"] == created["create_at"]
    assert updated["update_at"] >= created["update_at"]

    listed = await api.call("GET", _drafts_url(s), token=s.user.token)
    # Newest first; the DM's draft is in every team's list.
    assert [(d["channel_id"], d["root_id"]) for d in listed] == [
        (s.channel["id"], ""),
        (s.dm["id"], root["id"]),
    ]
    assert listed[0]["message"] == "a whole thought"

    names = [e.event for e in node.events.events if e.event.startswith("draft_")]
    assert names == ["draft_created", "draft_created", "draft_updated"]
    first = node.events.named("draft_created")[0]
    assert first.broadcast.user_id == s.user.id
    assert first.broadcast.omit_connection_id == "conn-1"
    assert json.loads(first.data["draft"]) == created

    await api.call(
        "DELETE", f"/users/me/channels/{s.dm['id']}/drafts/{root['id']}", token=s.user.token
    )
    await api.call("DELETE", f"/users/me/channels/{s.channel['id']}/drafts", token=s.user.token)
    assert await api.call("GET", _drafts_url(s), token=s.user.token) == []
    deleted = node.events.named("draft_deleted")
    assert [json.loads(e.data["draft"])["channel_id"] for e in deleted] == [
        s.dm["id"],
        s.channel["id"],
    ]
    # Deleting a draft that is not there is fine, and sends nothing.
    await api.call("DELETE", f"/users/me/channels/{s.channel['id']}/drafts", token=s.user.token)
    assert len(node.events.named("draft_deleted")) == 2


async def test_empty_message_deletes_and_files_show(api: API, s: Setup) -> None:
    draft = {"channel_id": s.channel["id"], "message": "soon"}
    await api.call("POST", "/drafts", token=s.user.token, json=draft, expect=201)
    gone = await api.call(
        "POST", "/drafts", token=s.user.token, json={**draft, "message": ""}, expect=201
    )
    assert gone is None  # Mattermost answers `null`
    assert await api.call("GET", _drafts_url(s), token=s.user.token) == []

    files = {"files": ("notes.txt", b"some notes", "text/plain")}
    uploaded = await api.call(
        "POST",
        "/files",
        token=s.user.token,
        data={"channel_id": s.channel["id"]},
        files=files,
        expect=201,
    )
    file_id = uploaded["file_infos"][0]["id"]
    with_file = await api.call(
        "POST",
        "/drafts",
        token=s.user.token,
        json={**draft, "file_ids": [file_id, file_id]},
        expect=201,
    )
    assert with_file["file_ids"] == [file_id]
    assert [f["id"] for f in with_file["metadata"]["files"]] == [file_id]


async def test_a_channel_left_hides_its_drafts(api: API, s: Setup) -> None:
    draft = {"channel_id": s.channel["id"], "message": "draft"}
    await api.call("POST", "/drafts", token=s.user.token, json=draft, expect=201)
    await api.call("DELETE", f"/channels/{s.channel['id']}/members/{s.user.id}", token=s.user.token)
    assert await api.call("GET", _drafts_url(s), token=s.user.token) == []


async def test_errors(api: API, s: Setup) -> None:
    # Not a member of the private channel: no create_post.
    denied = await api.call(
        "POST",
        "/drafts",
        token=s.other.token,
        json={"channel_id": s.channel["id"], "message": "x"},
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"
    unknown = await api.call(
        "POST",
        "/drafts",
        token=s.admin.token,
        json={"channel_id": UNKNOWN, "message": "x"},
        expect=404,
    )
    assert unknown["id"] == "app.channel.get.existing.app_error"
    for body, error in (
        ({"channel_id": s.channel["id"], "message": 5}, "api.context.invalid_param.app_error"),
        ("not an object", "api.context.invalid_param.app_error"),
        (
            {"channel_id": s.channel["id"], "message": "x", "root_id": "short"},
            "model.draft.is_valid.root_id.app_error",
        ),
        (
            {"channel_id": s.channel["id"], "message": "x" * 16384},
            "model.draft.is_valid.message_length.app_error",
        ),
    ):
        rejected = await api.call("POST", "/drafts", token=s.user.token, json=body, expect=400)
        assert rejected["id"] == error, body
    others = await api.call("GET", _drafts_url(s, s.user), token=s.other.token, expect=403)
    assert others["id"] == "api.context.permissions.app_error"
    team = await api.new_team(s.admin.token)
    outside = await api.call(
        "GET", f"/users/me/teams/{team['id']}/drafts", token=s.user.token, expect=403
    )
    assert outside["id"] == "api.context.permissions.app_error"
    await api.call(
        "DELETE",
        f"/users/{s.user.id}/channels/{s.channel['id']}/drafts",
        token=s.other.token,
        expect=403,
    )
    await api.call("DELETE", "/users/me/channels/nope/drafts", token=s.user.token, expect=400)
    await api.call("GET", _drafts_url(s), expect=401)


class TestDisabled:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {"MM_SERVICESETTINGS_ALLOWSYNCEDDRAFTS": "false"}

    async def test_drafts_off(self, api: API, s: Setup) -> None:
        config = await api.call("GET", "/config/client?format=old")
        assert config["AllowSyncedDrafts"] == "false"
        off = await api.call(
            "POST",
            "/drafts",
            token=s.user.token,
            json={"channel_id": s.channel["id"], "message": "x"},
            expect=501,
        )
        assert off["id"] == "api.drafts.disabled.app_error"
        await api.call("GET", _drafts_url(s), token=s.user.token, expect=501)
