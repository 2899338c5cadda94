"""Bulk export, then import into an empty server: the same teams, channels, users, memberships,
posts, threads, reactions and files, compared through the API of both; a second import changes
nothing; bad lines are reported by number and nothing is written. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hubbub.app import Hubbub
from hubbub.config import load_config
from tests.support.api import API, User
from tests.support.files import upload_one
from tests.support.jobs_snapshot import differences, snapshot
from tests.support.jobs_world import png, post, react, run_job
from tests.support.postgres import fresh_postgres_database


@dataclass
class Server:
    node: Hubbub
    api: API
    admin: User


@pytest.fixture
async def target(
    db_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    """A second, empty server on a fresh database of the same kind, with its own files."""
    env = {
        "MM_FILESETTINGS_DIRECTORY": str(tmp_path / "target-files"),
        "MM_SERVICESETTINGS_ENABLEDEVELOPER": "true",
    }
    if db_kind == "sqlite":
        env["MM_SQLSETTINGS_DATASOURCE"] = str(tmp_path / "target.db")
    else:
        env["MM_SQLSETTINGS_DRIVERNAME"] = "postgres"
        env["MM_SQLSETTINGS_DATASOURCE"] = fresh_postgres_database(
            request.getfixturevalue("postgres")
        )
    node = Hubbub(load_config(None, environ=env))
    await node.start()
    try:
        transport = httpx.ASGITransport(app=node.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://target.test") as c:
            api = API(c)
            yield Server(node, api, await api.new_user(prefix="targetadmin"))
    finally:
        await node.stop()


async def populate(api: API, admin: User) -> set[str]:
    """Two teams, public and private channels, members with roles, threads, reactions, files,
    a pinned and an edited post, a deleted one, a DM, a GM and a self-DM. Returns usernames."""
    alice = await api.new_user(admin.token, prefix="alice")
    bob = await api.new_user(admin.token, prefix="bob")
    carol = await api.new_user(admin.token, prefix="carol")
    await api.call(
        "PUT",
        f"/users/{alice.id}/patch",
        alice.token,
        json={"nickname": "Al", "first_name": "Alice", "position": "lead"},
    )
    team = await api.new_team(admin.token)
    other = await api.new_team(admin.token, type_="I")
    await api.call("PUT", f"/teams/{team['id']}/patch", admin.token, json={"description": "d"})
    for user in (alice, bob):
        await api.add_to_team(admin.token, team["id"], user.id)
    await api.add_to_team(admin.token, other["id"], carol.id)
    await api.call(
        "PUT",
        f"/teams/{team['id']}/members/{alice.id}/roles",
        admin.token,
        json={"roles": "team_user team_admin"},
    )
    public = await api.new_channel(admin.token, team["id"])
    private = await api.new_channel(admin.token, team["id"], type_="P")
    elsewhere = await api.new_channel(admin.token, other["id"])
    await api.call(
        "PUT",
        f"/channels/{public['id']}/patch",
        admin.token,
        json={"header": "the header", "purpose": "the purpose"},
    )
    for user in (alice, bob):
        await api.add_to_channel(admin.token, public["id"], user.id)
    await api.add_to_channel(admin.token, private["id"], alice.id)
    await api.add_to_channel(admin.token, elsewhere["id"], carol.id)
    await api.call(
        "PUT",
        f"/channels/{private['id']}/members/{alice.id}/roles",
        admin.token,
        json={"roles": "channel_user channel_admin"},
    )

    gone = await post(api, alice.token, public["id"], "deleted before the export")
    await api.call("DELETE", f"/posts/{gone['id']}", alice.token)
    picture = await upload_one(api, alice.token, public["id"], "picture.png", png())
    root = await post(
        api, alice.token, public["id"], "root with a picture :)", file_ids=[picture["id"]]
    )
    await react(api, bob, root["id"], "smile")
    await react(api, admin, root["id"], "+1")
    reply = await post(api, bob.token, public["id"], "a reply", root_id=root["id"])
    await react(api, alice, reply["id"], "heart")
    notes = await upload_one(api, alice.token, public["id"], "notes.txt", b"plain notes\n")
    await post(
        api,
        alice.token,
        public["id"],
        "a second reply with notes",
        root_id=root["id"],
        file_ids=[notes["id"]],
    )
    pinned = await post(api, bob.token, public["id"], "pin me")
    await api.call("POST", f"/posts/{pinned['id']}/pin", bob.token)
    edited = await post(api, alice.token, public["id"], "before the edit")
    await api.call(
        "PUT", f"/posts/{edited['id']}/patch", alice.token, json={"message": "after the edit"}
    )
    await post(api, alice.token, private["id"], "secret")
    await post(api, carol.token, elsewhere["id"], "hello other team")

    dm = await api.call(
        "POST", "/channels/direct", alice.token, json=[alice.id, bob.id], expect=201
    )
    dm_root = await post(api, alice.token, dm["id"], "hi bob")
    await post(api, bob.token, dm["id"], "hi alice", root_id=dm_root["id"])
    gm = await api.call("POST", "/channels/group", alice.token, json=[bob.id, carol.id], expect=201)
    group_post = await post(api, carol.token, gm["id"], "hello group")
    await react(api, alice, group_post["id"], "wave")
    self_dm = await api.call(
        "POST", "/channels/direct", alice.token, json=[alice.id, alice.id], expect=201
    )
    await post(api, alice.token, self_dm["id"], "note to self")

    # Saved posts and favorite channels (preferences, as Mattermost keeps them).
    for user, category, name in (
        (alice, "flagged_post", pinned["id"]),
        (bob, "flagged_post", reply["id"]),
        (bob, "flagged_post", group_post["id"]),
        (alice, "favorite_channel", public["id"]),
        (alice, "favorite_channel", dm["id"]),
        (carol, "favorite_channel", gm["id"]),
    ):
        await api.call(
            "PUT",
            f"/users/{user.id}/preferences",
            user.token,
            json=[{"user_id": user.id, "category": category, "name": name, "value": "true"}],
        )
    return {admin.username, alice.username, bob.username, carol.username}


async def export_zip(api: API, admin: User) -> tuple[dict[str, Any], bytes]:
    job = await run_job(api, admin.token, "export_process")
    assert job["status"] == "success", job
    resp = await api.raw("GET", f"/jobs/{job['id']}/download", admin.token)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    return job, resp.content


async def import_file(server: Server, content: bytes, name: str, **data: str) -> dict[str, Any]:
    await server.node.files.write(f"import/{name}", content)
    return await run_job(
        server.api, server.admin.token, "import_process", {"import_file": f"import/{name}", **data}
    )


async def test_export_then_import_reproduces_the_server(
    api: API, admin: User, target: Server
) -> None:
    usernames = await populate(api, admin)
    job, content = await export_zip(api, admin)
    assert job["data"]["exported_users"] == "4" and job["data"]["exported_attachments"] == "2"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        lines = [orjson.loads(x) for x in archive.read("export.jsonl").splitlines()]
        assert lines[0]["type"] == "version" and lines[0]["version"] == 1
        kinds = [line["type"] for line in lines]
        assert kinds == sorted(
            kinds,
            key=[
                "version",
                "team",
                "channel",
                "user",
                "post",
                "direct_channel",
                "direct_post",
            ].index,
        )
        for line in lines:
            for attachment in (line.get("post") or {}).get("attachments", []):
                assert attachment["path"] in archive.namelist()
        assert not any("deleted before" in str(line) for line in lines)

    imported = await import_file(target, content, "export.zip")
    assert imported["status"] == "success", imported
    exported = int(job["data"]["exported_posts"]) + int(job["data"]["exported_direct_posts"])
    assert int(imported["data"]["imported_posts"]) == exported

    source = await snapshot(api, admin.token, usernames)
    copied = await snapshot(target.api, target.admin.token, usernames)
    assert differences(source, copied) == []
    alice = next(u for n, u in source["users"].items() if n.startswith("alice"))
    assert [m for m in alice["channels"].values() if m["favorite"]], alice
    assert alice["saved"], alice
    assert set(source["users"]) == usernames and len(source["channels"]) >= 9

    # Run again: nothing new, nothing doubled.
    again = await import_file(target, content, "export-again.zip")
    assert again["status"] == "success", again
    assert {
        k: v
        for k, v in again["data"].items()
        if k.startswith("imported_") and k != "imported_through_line"
    } == dict.fromkeys(
        [
            f"imported_{k}"
            for k in ("teams", "channels", "users", "posts", "reactions", "attachments")
        ],
        "0",
    )
    assert differences(source, await snapshot(target.api, target.admin.token, usernames)) == []


HAND_WRITTEN = [
    {"type": "version", "version": 1},
    {"type": "team", "team": {"name": "handteam", "display_name": "Hand Team", "type": "O"}},
    {
        "type": "channel",
        "channel": {
            "team": "handteam",
            "name": "general-talk",
            "display_name": "General talk",
            "type": "O",
            "header": "Welcome",
        },
    },
    {
        "type": "user",
        "user": {
            "username": "hand.one",
            "email": "one@example.com",
            "teams": [
                {
                    "name": "handteam",
                    "roles": "team_user team_admin",
                    "channels": [{"name": "general-talk", "roles": "channel_user"}],
                }
            ],
        },
    },
    {
        "type": "user",
        "user": {
            "username": "hand.two",
            "email": "two@example.com",
            "teams": [{"name": "handteam", "channels": []}],
        },
    },
    {"type": "user", "user": {"username": "hand.three", "email": "three@example.com"}},
    {
        "type": "post",
        "post": {
            "team": "handteam",
            "channel": "general-talk",
            "user": "hand.one",
            "message": "first!",
            "create_at": 1600000000000,
            "reactions": [{"user": "hand.one", "emoji_name": "tada", "create_at": 1600000000001}],
            "replies": [{"user": "hand.one", "message": "self reply", "create_at": 1600000000500}],
        },
    },
    {"type": "direct_channel", "direct_channel": {"members": ["hand.one", "hand.two"]}},
    {
        "type": "direct_channel",
        "direct_channel": {"members": ["hand.one", "hand.two", "hand.three"], "header": "trio"},
    },
    {
        "type": "direct_post",
        "direct_post": {
            "channel_members": ["hand.one", "hand.two"],
            "user": "hand.two",
            "message": "psst",
            "create_at": 1600000001000,
        },
    },
    {
        "type": "direct_post",
        "direct_post": {
            "channel_members": ["hand.one", "hand.two", "hand.three"],
            "user": "hand.three",
            "message": "group hello",
            "create_at": 1600000002000,
        },
    },
]


def jsonl(lines: list[Any]) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"


async def test_a_hand_written_file_in_mattermosts_format_imports(target: Server) -> None:
    job = await import_file(target, jsonl(HAND_WRITTEN), "hand.jsonl")
    assert job["status"] == "success", job
    assert job["data"]["imported_users"] == "3" and job["data"]["imported_posts"] == "4"
    token = target.admin.token
    team = await target.api.call("GET", "/teams/name/handteam", token)
    one = await target.api.call("GET", "/users/username/hand.one", token)
    member = await target.api.call("GET", f"/teams/{team['id']}/members/{one['id']}", token)
    assert member["scheme_admin"] is True
    channels = {
        c["name"]: c for c in await target.api.call("GET", f"/users/{one['id']}/channels", token)
    }
    assert {"general-talk", "town-square"} <= set(channels)  # town square: joined with the team
    assert channels["general-talk"]["header"] == "Welcome"
    listing = await target.api.call(
        "GET", f"/channels/{channels['general-talk']['id']}/posts", token
    )
    messages = sorted(p["message"] for p in listing["posts"].values())
    assert messages == ["first!", "self reply"]
    root = next(p for p in listing["posts"].values() if p["message"] == "first!")
    assert root["reply_count"] == 1 and root["metadata"]["reactions"][0]["emoji_name"] == "tada"
    groups = [c for c in channels.values() if c["type"] == "G"]
    assert len(groups) == 1 and groups[0]["header"] == "trio"
    dms = [c for c in channels.values() if c["type"] == "D"]
    assert len(dms) == 1


BAD = [
    *HAND_WRITTEN[:3],
    b'{"type": "team", "team": {"name": "bad team!", "display_name": "x", "type": "O"}}',  # 4
    {"type": "user", "user": {"username": "hand.one", "email": "one@example.com"}},
    b"{not json",  # 6
    {"type": "user", "user": {"username": "x", "email": "nope@example.com"}},  # 7: too short
    {"type": "user", "user": {"username": "hand.four", "email": "ONE@example.com"}},  # 8: taken
    {
        "type": "post",
        "post": {
            "team": "handteam",
            "channel": "no-such-channel",  # 9
            "user": "hand.one",
            "message": "m",
            "create_at": 1,
        },
    },
    {
        "type": "post",
        "post": {
            "team": "handteam",
            "channel": "general-talk",
            "user": "hand.one",
            "message": "m",
            "create_at": 1600000000000,
            "attachments": [{"path": "data/missing.png"}],
        },
    },  # 10
    {
        "type": "post",
        "post": {
            "team": "handteam",
            "channel": "general-talk",
            "user": "hand.one",
            "message": "fine",
            "create_at": 1600000000000,
        },
    },
    {
        "type": "post",
        "post": {
            "team": "handteam",
            "channel": "general-talk",
            "user": "hand.one",
            "message": "saved by a stranger",
            "create_at": 1600000000001,
            "flagged_by": ["nobody.here"],
        },
    },  # 12
    {"type": "team", "team": {"name": "late", "display_name": "Late", "type": "O"}},  # 13: order
    {
        "type": "direct_post",
        "direct_post": {
            "channel_members": ["hand.one"],
            "user": "hand.one",
            "message": "m",
            "create_at": 5,
        },
    },  # 14: one member
    {"type": "mystery", "mystery": {}},  # 15
]


async def test_bad_lines_are_reported_by_number_and_nothing_is_written(target: Server) -> None:
    for dry_run in ("true", "false"):
        job = await import_file(target, jsonl(BAD), f"bad-{dry_run}.jsonl", dry_run=dry_run)
        assert job["status"] == "error", job
        errors = orjson.loads(job["data"]["errors"])
        assert [e["line"] for e in errors] == [4, 6, 7, 8, 9, 10, 12, 13, 14, 15], errors
        assert job["data"]["line_number"] == "4"
        assert "10 of 15 lines cannot be imported" in job["data"]["error"]
        assert "user 'nobody.here' is neither earlier in the file" in str(errors)
        assert "email 'one@example.com' already belongs to user 'hand.one'" in str(errors)
        await target.api.call("GET", "/teams/name/handteam", target.admin.token, expect=404)
        await target.api.call("GET", "/users/username/hand.one", target.admin.token, expect=404)


async def test_a_dry_run_of_a_good_file_writes_nothing(target: Server) -> None:
    job = await import_file(target, jsonl(HAND_WRITTEN), "dry.jsonl", dry_run="true")
    assert job["status"] == "success" and job["data"]["validated_lines"] == str(len(HAND_WRITTEN))
    await target.api.call("GET", "/teams/name/handteam", target.admin.token, expect=404)


async def test_a_missing_or_broken_import_file_fails_with_the_reason(target: Server) -> None:
    job = await run_job(
        target.api, target.admin.token, "import_process", {"import_file": "import/none.zip"}
    )
    assert job["status"] == "error" and "not in the file store" in job["data"]["error"]
    job = await import_file(target, b"PK\x03\x04 broken", "broken.zip")
    assert job["status"] == "error" and "zip" in job["data"]["error"]


# Every object of Mattermost's documented bulk format (docs.mattermost.com, "Bulk loading data",
# "Data format"), with the fields its examples show, in a zip with the attachments under data/.
THEME = '{"sidebarBg":"#fafafa","sidebarText":"#333333","centerChannelBg":"#ffffff"}'
DOCUMENTED = [
    {"type": "version", "version": 1},
    {"type": "emoji", "emoji": {"name": "custom-emoji-troll", "image": "data/emoji/troll.png"}},
    {
        "type": "team",
        "team": {
            "name": "team-name",
            "display_name": "Team Display Name",
            "type": "O",
            "description": "The Team Description",
            "allow_open_invite": True,
        },
    },
    {
        "type": "channel",
        "channel": {
            "team": "team-name",
            "name": "channel-name",
            "display_name": "Channel Name",
            "type": "O",
            "header": "The Channel Header",
            "purpose": "The Channel Purpose",
        },
    },
    {
        "type": "channel",
        "channel": {
            "team": "team-name",
            "name": "private-name",
            "display_name": "Private Name",
            "type": "P",
        },
    },
    {
        "type": "user",
        "user": {
            "username": "username",
            "email": "email@example.com",
            "auth_service": "",
            "password": "passw0rd",
            "nickname": "bobuser",
            "first_name": "Bob",
            "last_name": "User",
            "position": "Senior Developer",
            "roles": "system_user",
            "locale": "pt_BR",
            "military_time": "true",
            "notify_props": {
                "desktop": "mention",
                "desktop_sound": "true",
                "email": "false",
                "mobile": "mention",
                "mobile_push_status": "away",
                "channel": "true",
                "comments": "root",
                "mention_keys": "deploy,release",
            },
            "teams": [
                {
                    "name": "team-name",
                    "theme": THEME,
                    "roles": "team_user team_admin",
                    "channels": [
                        {
                            "name": "channel-name",
                            "roles": "channel_user channel_admin",
                            "notify_props": {
                                "desktop": "default",
                                "mobile": "all",
                                "mark_unread": "mention",
                            },
                            "favorite": True,
                        },
                        {"name": "private-name", "roles": "channel_user"},
                    ],
                }
            ],
        },
    },
    *(
        {
            "type": "user",
            "user": {
                "username": f"username{n}",
                "email": f"email{n}@example.com",
                "teams": [{"name": "team-name", "channels": [{"name": "channel-name"}]}],
            },
        }
        for n in (2, 3)
    ),
    {
        "type": "post",
        "post": {
            "team": "team-name",
            "channel": "channel-name",
            "user": "username",
            "message": "The post message",
            "props": {
                "attachments": [
                    {"pretext": "This is the attachment pretext.", "text": "The attachment text."}
                ]
            },
            "create_at": 140012340013,
            "flagged_by": ["username2", "username3"],
            "replies": [
                {
                    "user": "username2",
                    "message": "The reply message",
                    "create_at": 140012352049,
                    "attachments": [{"path": "data/replies/reply.txt"}],
                },
                {"user": "username3", "message": "Other reply message", "create_at": 140012353057},
            ],
            "reactions": [
                {"user": "username2", "emoji_name": "+1", "create_at": 140012356032},
                {"user": "username3", "emoji_name": "heart", "create_at": 140012359034},
            ],
            "attachments": [{"path": "files/picture.png"}, {"path": "files/notes.txt"}],
        },
    },
    {
        "type": "direct_channel",
        "direct_channel": {
            "members": ["username", "username2", "username3"],
            "header": "The Channel Header",
            "favorited_by": ["username", "username2"],
        },
    },
    {"type": "direct_channel", "direct_channel": {"members": ["username", "username2"]}},
    {
        "type": "direct_post",
        "direct_post": {
            "channel_members": ["username", "username2", "username3"],
            "user": "username2",
            "message": "Hello Group Channel",
            "create_at": 140012340013,
            "flagged_by": ["username"],
            "replies": [
                {"user": "username3", "message": "The reply message", "create_at": 140012352049}
            ],
            "reactions": [{"user": "username", "emoji_name": "+1", "create_at": 140012356032}],
            "attachments": [{"path": "files/group.txt"}],
        },
    },
    {
        "type": "direct_post",
        "direct_post": {
            "channel_members": ["username", "username2"],
            "user": "username",
            "message": "Hello Direct Channel",
            "create_at": 140012340014,
        },
    },
]
DOCUMENTED_FILES = {
    "data/files/picture.png": png(),
    "data/files/notes.txt": b"notes\n",
    "data/replies/reply.txt": b"reply file\n",
    "data/files/group.txt": b"group file\n",
}


def documented_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("import.jsonl", jsonl(DOCUMENTED))
        for name, content in DOCUMENTED_FILES.items():
            archive.writestr(name, content)
    return out.getvalue()


async def test_mattermosts_documented_example_objects_import_with_their_attachments(
    target: Server,
) -> None:
    api, token = target.api, target.admin.token
    job = await import_file(target, documented_zip(), "documented.zip")
    assert job["status"] == "success", job
    assert job["data"]["skipped_lines"] == "1"  # the emoji: nothing to import it into
    assert job["data"]["imported_posts"] == "6" and job["data"]["imported_attachments"] == "4"

    team = await api.call("GET", "/teams/name/team-name", token)
    assert team["description"] == "The Team Description" and team["allow_open_invite"] is True
    channel = await api.call("GET", f"/teams/{team['id']}/channels/name/channel-name", token)
    assert (channel["header"], channel["purpose"]) == ("The Channel Header", "The Channel Purpose")
    private = await api.call("GET", f"/teams/{team['id']}/channels/name/private-name", token)
    assert private["type"] == "P"

    # The user, with the password the file gave (it signs in with it).
    login = await api.raw(
        "POST", "/users/login", json={"login_id": "username", "password": "passw0rd"}
    )
    assert login.status_code == 200, login.text
    user, user_token = login.json(), login.headers["Token"]
    assert {k: user[k] for k in ("nickname", "first_name", "last_name", "position", "locale")} == {
        "nickname": "bobuser",
        "first_name": "Bob",
        "last_name": "User",
        "position": "Senior Developer",
        "locale": "pt_BR",
    }
    assert user["notify_props"]["mention_keys"] == "deploy,release"
    assert (
        user["notify_props"]["desktop"] == "mention" and user["notify_props"]["comments"] == "root"
    )
    member = await api.call("GET", f"/teams/{team['id']}/members/{user['id']}", token)
    assert member["scheme_admin"] is True
    membership = await api.call("GET", f"/channels/{channel['id']}/members/{user['id']}", token)
    assert membership["scheme_admin"] is True
    assert membership["notify_props"]["mark_unread"] == "mention"
    assert membership["notify_props"]["push"] == "all"
    await api.call("GET", f"/channels/{private['id']}/members/{user['id']}", token)

    # The post, its two replies, two reactions and two files; a reply's file.
    listing = await api.call("GET", f"/channels/{channel['id']}/posts", user_token)
    by_message = {p["message"]: p for p in listing["posts"].values()}
    assert set(by_message) == {"The post message", "The reply message", "Other reply message"}
    root = by_message["The post message"]
    assert root["create_at"] == 140012340013 and root["reply_count"] == 2
    assert root["props"]["attachments"][0]["pretext"] == "This is the attachment pretext."
    assert sorted(r["emoji_name"] for r in root["metadata"]["reactions"]) == ["+1", "heart"]
    files = {f["name"]: f for f in root["metadata"]["files"]}
    assert set(files) == {"picture.png", "notes.txt"}
    got = await api.raw("GET", f"/files/{files['notes.txt']['id']}", user_token)
    assert got.content == b"notes\n"
    reply = by_message["The reply message"]
    assert reply["root_id"] == root["id"]
    (reply_file,) = reply["metadata"]["files"]
    got = await api.raw("GET", f"/files/{reply_file['id']}", user_token)
    assert got.content == b"reply file\n"

    # The group and the direct channel, their posts, reply, reaction and file.
    mine = {
        c["type"]: c
        for c in await api.call("GET", "/users/me/channels", user_token)
        if c["type"] in ("D", "G")
    }
    assert mine["G"]["header"] == "The Channel Header"
    group = await api.call("GET", f"/channels/{mine['G']['id']}/posts", user_token)
    by_message = {p["message"]: p for p in group["posts"].values()}
    hello = by_message["Hello Group Channel"]
    assert hello["reply_count"] == 1 and by_message["The reply message"]["root_id"] == hello["id"]
    assert [r["emoji_name"] for r in hello["metadata"]["reactions"]] == ["+1"]
    (group_file,) = hello["metadata"]["files"]
    got = await api.raw("GET", f"/files/{group_file['id']}", user_token)
    assert got.content == b"group file\n"
    direct = await api.call("GET", f"/channels/{mine['D']['id']}/posts", user_token)
    assert [p["message"] for p in direct["posts"].values()] == ["Hello Direct Channel"]

    # Saved posts and favorites, kept as Mattermost keeps them (preferences); the Favorites
    # category of the sidebar is seeded from them.
    two = await api.raw(
        "POST", "/users/login", json={"login_id": "username2", "password": "x"}
    )  # no password in the file: none to sign in with
    assert two.status_code == 401
    flagged = {
        name: await api.call(
            "GET",
            f"/users/{(await api.call('GET', f'/users/username/{name}', token))['id']}"
            "/preferences/flagged_post",
            token,
        )
        for name in ("username", "username2", "username3")
    }
    assert [p["name"] for p in flagged["username"]] == [hello["id"]]
    assert [p["name"] for p in flagged["username2"]] == [root["id"]]
    assert [p["name"] for p in flagged["username3"]] == [root["id"]]
    favorites = await api.call("GET", f"/users/{user['id']}/preferences/favorite_channel", token)
    assert sorted(p["name"] for p in favorites) == sorted([channel["id"], mine["G"]["id"]])
    categories = await api.call(
        "GET", f"/users/{user['id']}/teams/{team['id']}/channels/categories", user_token
    )
    (favorite_category,) = [c for c in categories["categories"] if c["type"] == "favorites"]
    assert sorted(favorite_category["channel_ids"]) == sorted([channel["id"], mine["G"]["id"]])

    # Importing it again changes nothing.
    again = await import_file(target, documented_zip(), "documented-again.zip")
    assert again["status"] == "success" and again["data"]["imported_posts"] == "0", again
