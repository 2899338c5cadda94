"""The mobile app's start-up calls, replayed with a bearer token as the app sends them, on SQLite
and PostgreSQL: each must answer what `mattermost-mobile`'s `app/actions/remote/entry/` reads
(`fetchAppEntryData`, `fetchMyChannelsForTeam`, `fetchRoles`, then the deferred
`restDeferredAppEntryActions`: threads per team with collapsed threads on, all teams, users
updated since the last connection, avatars). The list and the before/after counts are in
docs/api/webapp-coverage.md."""

from __future__ import annotations

from typing import Any

from tests.support.api import API, User


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
