"""The mobile app's start-up calls, replayed with a bearer token as the app sends them, on SQLite
and PostgreSQL: each must answer what `mattermost-mobile`'s `app/actions/remote/entry/` reads
(`fetchAppEntryData`, `fetchMyChannelsForTeam`, `fetchRoles`, then the deferred
`restDeferredAppEntryActions`: threads per team with collapsed threads on, all teams, users
updated since the last connection, avatars). The list and the before/after counts are in
docs/api/webapp-coverage.md."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import API, PASSWORD, User


async def test_mobile_start_up_calls(api: API, admin: User) -> None:
    alice = await api.new_user(admin.token)
    bob = await api.new_user(admin.token)
    team = await api.new_team(admin.token)
    for member in (alice, bob):
        await api.add_to_team(admin.token, team["id"], member.id)
    channel = await api.new_channel(admin.token, team["id"])
    for member in (alice, bob):
        await api.add_to_channel(admin.token, channel["id"], member.id)
    root = await api.call(
        "POST",
        "/posts",
        token=alice.token,
        json={"channel_id": channel["id"], "message": "root"},
        expect=201,
    )
    await api.call(
        "POST",
        "/posts",
        token=bob.token,
        json={"channel_id": channel["id"], "message": "reply", "root_id": root["id"]},
        expect=201,
    )
    t, tid = alice.token, team["id"]

    async def get(path: str) -> Any:
        return await api.call("GET", path, token=t)

    # verifyPushProxy: hubbub sends no push notifications, and says so (a missing answer would
    # make the app mark the push proxy verified).
    ping = await get("/system/ping?time=1&device_id=android_rn-v2:abc")
    assert ping["CanReceiveNotifications"] == "false"
    assert "CanReceiveNotifications" not in await get("/system/ping")

    # fetchConfigAndLicense
    config = await get("/config/client?format=old")
    assert all(isinstance(v, str) for v in config.values())
    assert config["CollapsedThreads"] == "always_on"  # processIsCRTEnabled: on for everyone
    assert config["Version"]
    license_ = await get("/license/client?format=old")
    assert license_["IsLicensed"] == "false"
    # fetchMyPreferences
    assert isinstance(await get("/users/me/preferences"), list)
    # fetchMyTeams, fetchMe
    assert [x["id"] for x in await get("/users/me/teams")] == [tid]
    members = await get("/users/me/teams/members")
    assert [(m["team_id"], m["delete_at"]) for m in members] == [(tid, 0)]
    me = await get("/users/me")
    assert me["id"] == alice.id and me["locale"] == "en"
    # fetchMyChannelsForTeam(team, includeDeleted=true, since)
    channels = await get(f"/users/me/teams/{tid}/channels?include_deleted=true&last_delete_at=0")
    assert channel["id"] in {c["id"] for c in channels}
    channel_members = await get(f"/users/me/teams/{tid}/channels/members")
    assert channel["id"] in {m["channel_id"] for m in channel_members}
    categories = await get(f"/users/me/teams/{tid}/channels/categories")
    assert set(categories) == {"categories", "order"}
    # fetchRoles: the user's, team members' and channel members' roles
    names = sorted(
        set(me["roles"].split())
        | {r for m in members for r in m["roles"].split()}
        | {r for m in channel_members for r in m["roles"].split()}
    )
    roles = await api.call("POST", "/roles/names", token=t, json=names)
    assert {r["name"] for r in roles} == set(names)

    # Deferred: fetchNewThreads with nothing stored yet (unread threads, not deleted, 60)
    threads = await get(
        f"/users/{alice.id}/teams/{tid}/threads?extended=true&before=&after=&deleted=false"
        "&unread=true&since=0&totalsOnly=false&per_page=60"
    )
    [thread] = threads["threads"]
    assert thread["id"] == root["id"] and thread["unread_replies"] == 1
    assert thread["participants"][0]["username"] == bob.username  # extended
    # fetchAllTeams, updateAllUsersSince
    assert tid in {x["id"] for x in await get("/teams?page=0&per_page=100")}
    since = await api.call("POST", f"/users/ids?since={me['create_at']}", token=t, json=[bob.id])
    assert [u["id"] for u in since] == [bob.id]
    # Avatars in the channel list and post list
    picture = await api.raw("GET", f"/users/{bob.id}/image?_=0", token=t)
    assert (picture.status_code, picture.headers["content-type"]) == (200, "image/png")
    # The thread screen: the thread, then marking it read
    one = await get(f"/users/{alice.id}/teams/{tid}/threads/{root['id']}?extended=true")
    read = await api.call(
        "PUT",
        f"/users/{alice.id}/teams/{tid}/threads/{root['id']}/read/{one['last_reply_at']}",
        token=t,
        json={},
    )
    assert read["unread_replies"] == 0


async def _login(api: API, user: User) -> str:
    resp = await api.client.post(
        "/api/v4/users/login", json={"login_id": user.username, "password": PASSWORD}
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["Token"]


class TestDevice:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {"MM_SERVICESETTINGS_SESSIONLENGTHWEBINHOURS": "24"}

    async def test_attaching_the_device(self, api: API, admin: User) -> None:
        """`registerDeviceToken` on a fresh start: `PUT /users/sessions/device`. The session then
        lasts as a mobile one, and an older session of the same user on the same device ends."""
        alice = await api.new_user(admin.token)
        old_phone = await _login(api, alice)
        phone = await _login(api, alice)
        device = "android_rn-v2:" + "f" * 40
        for token in (old_phone, phone):
            assert await api.call(
                "PUT", "/users/sessions/device", token=token, json={"device_id": device}
            )
        # The newer attach ended the older session of the same device; the laptop stays.
        await api.call("GET", "/users/me", token=old_phone, expect=401)
        await api.call("GET", "/users/me", token=alice.token)
        sessions = await api.call("GET", f"/users/{alice.id}/sessions", token=phone)
        by_device = {s["device_id"]: s for s in sessions}
        assert set(by_device) == {device, ""}
        hours = (by_device[device]["expires_at"] - by_device[device]["create_at"]) / 3_600_000
        assert round(hours) == 24 * 30  # SessionLengthMobileInHours (Mattermost's default)
        assert round((by_device[""]["expires_at"] - by_device[""]["create_at"]) / 3_600_000) == 24
        for body in ({}, {"device_id": ""}, {"device_id": 7}, {"device_id": "x" * 513}):
            bad = await api.call(
                "PUT", "/users/sessions/device", token=phone, json=body, expect=400
            )
            assert bad["id"] == "api.context.invalid_body_param.app_error"
        await api.call("PUT", "/users/sessions/device", json={"device_id": device}, expect=401)


async def test_group_channel_members(api: API, admin: User) -> None:
    """`POST /users/group_channels`: the web app's sidebar and the mobile app's deferred start-up
    (`fetchMissingDirectChannelsInfo`) name a group message by its members."""
    alice, bob, carol, dave = [await api.new_user(admin.token) for _ in range(4)]
    gm = await api.call(
        "POST", "/channels/group", token=alice.token, json=[alice.id, bob.id, carol.id], expect=201
    )
    other = await api.call(
        "POST", "/channels/group", token=bob.token, json=[bob.id, carol.id, dave.id], expect=201
    )
    dm = await api.call(
        "POST", "/channels/direct", token=alice.token, json=[alice.id, bob.id], expect=201
    )
    got = await api.call(
        "POST",
        "/users/group_channels",
        token=alice.token,
        json=[gm["id"], other["id"], dm["id"], "x" * 26],
    )
    # Only the caller's group channels; every member, the caller too, without secrets.
    assert set(got) == {gm["id"]}
    assert sorted(u["id"] for u in got[gm["id"]]) == sorted([alice.id, bob.id, carol.id])
    assert all("password" not in u and "auth_data" not in u for u in got[gm["id"]])
    assert await api.call("POST", "/users/group_channels", token=dave.token, json=[gm["id"]]) == {}
    for body in ([], {"ids": [gm["id"]]}, "nope"):
        bad = await api.call(
            "POST", "/users/group_channels", token=alice.token, json=body, expect=400
        )
        assert bad["id"] in {
            "api.context.invalid_param.app_error",
            "api.context.invalid_body_param.app_error",
        }
    await api.call("POST", "/users/group_channels", json=[gm["id"]], expect=401)
