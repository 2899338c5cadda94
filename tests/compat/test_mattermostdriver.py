"""The real `mattermostdriver` 7.3.2 against a real `hubbub serve` (SQLite and PostgreSQL).

Covers the basic flow of the reference's endpoint table (§3) that needs no websocket, through the
driver's own methods, so its quirks are exercised as they are: a `{}` JSON body on every GET,
`Content-Type` compared for equality, the `Token` header read only on a 200 login, raw responses
for downloads, and `//reactions` in the path of `get_reactions_of_post`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from mattermostdriver import Driver
from mattermostdriver.exceptions import (
    InvalidOrMissingParameters,
    NoAccessTokenProvided,
    ResourceNotFound,
)

from hubbub.ids import is_valid_id
from tests.support.server import ServerProcess

PASSWORD = "compat-password-1"
REQUEST_TIMEOUT = 10  # seconds, for every HTTP request the driver makes
_n = itertools.count()


def driver_for(server: ServerProcess, **options: Any) -> Driver:
    return Driver(
        {
            "scheme": "http",
            "url": "127.0.0.1",
            "port": server.port,
            "basepath": "/api/v4",
            "request_timeout": REQUEST_TIMEOUT,
            **options,
        }
    )


@dataclass
class World:
    server: ServerProcess
    admin: Driver
    admin_id: str
    bob: Driver
    bob_id: str
    carol_id: str
    team: dict[str, Any]
    public: dict[str, Any]
    private: dict[str, Any]

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(_n)}"


def _login(server: ServerProcess, username: str) -> tuple[Driver, dict[str, Any]]:
    driver = driver_for(server, login_id=username, password=PASSWORD)
    me = driver.login()
    return driver, me


@pytest.fixture(scope="module")
def world(hubbub_server: ServerProcess) -> Iterator[World]:
    anonymous = driver_for(hubbub_server)
    first = anonymous.users.create_user(
        {"email": "admin@example.com", "username": "admin", "password": PASSWORD}
    )
    assert "system_admin" in first["roles"].split()
    admin, me = _login(hubbub_server, "admin")
    assert me["id"] == first["id"]

    ids = {}
    for name in ("bob", "carol"):
        user = admin.users.create_user(
            {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
        )
        assert user["roles"] == "system_user"
        ids[name] = user["id"]
    bob, _ = _login(hubbub_server, "bob")

    team = admin.teams.create_team({"name": "compat", "display_name": "Compat", "type": "O"})
    admin.teams.add_user_to_team(team["id"], {"team_id": team["id"], "user_id": ids["bob"]})
    public = admin.channels.create_channel(
        {"team_id": team["id"], "name": "public-1", "display_name": "Public", "type": "O"}
    )
    private = admin.channels.create_channel(
        {"team_id": team["id"], "name": "private-1", "display_name": "Private", "type": "P"}
    )
    yield World(
        hubbub_server, admin, first["id"], bob, ids["bob"], ids["carol"], team, public, private
    )


def post(world: World, driver: Driver, channel_id: str, message: str, **extra: Any) -> Any:
    return driver.posts.create_post({"channel_id": channel_id, "message": message, **extra})


# --- Accounts ------------------------------------------------------------------------------------


def test_password_login_keeps_the_token_header(world: World) -> None:
    assert is_valid_id(world.admin.client.token)
    assert world.admin.client.userid == world.admin_id
    assert world.admin.client.username == "admin"
    me = world.admin.users.get_user("me")
    assert me["id"] == world.admin_id
    assert "password" not in me
    assert world.bob.users.get_user(world.admin_id)["username"] == "admin"


def test_wrong_password_raises_the_drivers_401_exception(world: World) -> None:
    with pytest.raises(NoAccessTokenProvided):
        driver_for(world.server, login_id="admin", password="not-it").login()


def test_users_by_ids(world: World) -> None:
    users = world.admin.users.get_users_by_ids([world.bob_id, world.carol_id])
    assert {u["id"] for u in users} == {world.bob_id, world.carol_id}


# --- Teams and channels --------------------------------------------------------------------------


def test_team_and_my_teams(world: World) -> None:
    team = world.team
    assert is_valid_id(team["id"]) and team["name"] == "compat" and team["type"] == "O"
    for driver in (world.admin, world.bob):
        teams = driver.teams.get_user_teams("me")
        assert team["id"] in {t["id"] for t in teams}
    members = world.admin.teams.get_team_members(team["id"])
    assert {world.admin_id, world.bob_id} <= {m["user_id"] for m in members}


def test_channels_and_my_channels(world: World) -> None:
    assert world.public["type"] == "O" and world.private["type"] == "P"
    assert world.public["team_id"] == world.team["id"]
    mine = world.admin.channels.get_channels_for_user("me", world.team["id"])
    names = {c["name"] for c in mine}
    # Mattermost creates town-square with every team and puts new team members in it.
    assert {"public-1", "private-1", "town-square"} <= names
    bobs = {c["name"] for c in world.bob.channels.get_channels_for_user("me", world.team["id"])}
    assert "town-square" in bobs
    assert "private-1" not in bobs
    public = world.bob.channels.get_public_channels(world.team["id"])
    assert "public-1" in {c["name"] for c in public}
    assert "private-1" not in {c["name"] for c in public}
    got = world.bob.channels.get_channel(world.public["id"])
    assert got["id"] == world.public["id"]


def test_channel_members_add_and_remove(world: World) -> None:
    cid = world.public["id"]
    members = world.admin.channels.get_channel_members(cid)
    assert world.admin_id in {m["user_id"] for m in members}

    added = world.admin.channels.add_user(cid, {"user_id": world.bob_id})
    assert added["user_id"] == world.bob_id and added["channel_id"] == cid
    assert world.bob_id in {m["user_id"] for m in world.admin.channels.get_channel_members(cid)}
    mine = world.bob.channels.get_channel_members_for_user("me", world.team["id"])
    assert cid in {m["channel_id"] for m in mine}

    removed = world.admin.channels.remove_channel_member(cid, world.bob_id)
    assert removed == {"status": "OK"}
    assert world.bob_id not in {m["user_id"] for m in world.admin.channels.get_channel_members(cid)}
    world.admin.channels.add_user(cid, {"user_id": world.bob_id})


def test_direct_channel(world: World) -> None:
    dm = world.bob.channels.create_direct_message_channel([world.bob_id, world.admin_id])
    assert dm["type"] == "D"
    assert dm["team_id"] == ""
    assert dm["name"] == "__".join(sorted([world.bob_id, world.admin_id]))
    again = world.admin.channels.create_direct_message_channel([world.admin_id, world.bob_id])
    assert again["id"] == dm["id"]
    sent = post(world, world.bob, dm["id"], "psst")
    assert sent["channel_id"] == dm["id"]


def test_group_channel(world: World) -> None:
    members = [world.admin_id, world.bob_id, world.carol_id]
    gm = world.admin.channels.create_group_message_channel(members)
    assert gm["type"] == "G"
    assert gm["name"] == hashlib.sha1("".join(sorted(members)).encode()).hexdigest()
    again = world.bob.channels.create_group_message_channel(list(reversed(members)))
    assert again["id"] == gm["id"]
    in_channel = {m["user_id"] for m in world.admin.channels.get_channel_members(gm["id"])}
    assert in_channel == set(members)


def test_view_channel(world: World) -> None:
    viewed = world.admin.channels.view_channel("me", {"channel_id": world.public["id"]})
    assert viewed["status"] == "OK"
    assert viewed["last_viewed_at_times"][world.public["id"]] > 0


# --- Posts ---------------------------------------------------------------------------------------


def test_post_reply_and_thread(world: World) -> None:
    cid = world.public["id"]
    root = post(world, world.admin, cid, "root of a thread")
    assert is_valid_id(root["id"])
    assert root["root_id"] == "" and root["user_id"] == world.admin_id
    assert root["create_at"] > 0 and root["delete_at"] == 0
    reply = post(world, world.bob, cid, "a reply", root_id=root["id"])
    assert reply["root_id"] == root["id"]

    thread = world.admin.posts.get_thread(root["id"])
    assert set(thread["order"]) == {root["id"], reply["id"]}
    assert thread["posts"][reply["id"]]["message"] == "a reply"
    from_reply = world.bob.posts.get_thread(reply["id"])
    assert set(from_reply["order"]) == {root["id"], reply["id"]}
    assert world.bob.posts.get_post(root["id"])["message"] == "root of a thread"


def test_patch_update_and_delete(world: World) -> None:
    cid = world.public["id"]
    original = post(world, world.admin, cid, "first draft")
    patched = world.admin.posts.patch_post(original["id"], {"message": "second draft"})
    assert patched["message"] == "second draft"
    assert patched["edit_at"] > 0
    assert patched["update_at"] >= original["update_at"]

    updated = world.admin.posts.update_post(
        original["id"], {"id": original["id"], "channel_id": cid, "message": "final"}
    )
    assert updated["message"] == "final"
    assert world.bob.posts.get_post(original["id"])["message"] == "final"

    assert world.admin.posts.delete_post(original["id"]) == {"status": "OK"}
    with pytest.raises(ResourceNotFound):
        world.admin.posts.get_post(original["id"])


def test_reactions(world: World) -> None:
    target = post(world, world.admin, world.public["id"], "react to me")
    reaction = world.bob.reactions.create_reaction(
        {"user_id": world.bob_id, "post_id": target["id"], "emoji_name": "thumbsup"}
    )
    assert reaction["emoji_name"] == "thumbsup"
    assert reaction["user_id"] == world.bob_id and reaction["post_id"] == target["id"]
    # The driver builds `/posts/<id>//reactions`; Mattermost's router cleans the path.
    listed = world.admin.reactions.get_reactions_of_post(target["id"])
    assert [(r["user_id"], r["emoji_name"]) for r in listed] == [(world.bob_id, "thumbsup")]
    assert world.admin.posts.get_post(target["id"])["has_reactions"] is True

    gone = world.bob.reactions.delete_reaction(world.bob_id, target["id"], "thumbsup")
    assert gone == {"status": "OK"}
    assert world.admin.reactions.get_reactions_of_post(target["id"]) == []


# --- Files ---------------------------------------------------------------------------------------


def test_upload_download_and_file_infos(world: World) -> None:
    cid = world.public["id"]
    content = os.urandom(70_000) + b"\x00\xff end"
    uploaded = world.admin.files.upload_file(
        cid, {"files": ("blob.bin", content, "application/octet-stream")}
    )
    (info,) = uploaded["file_infos"]
    assert info["name"] == "blob.bin" and info["size"] == len(content)
    file_id = info["id"]

    attached = post(world, world.admin, cid, "with a file", file_ids=[file_id])
    assert attached["file_ids"] == [file_id]

    raw = world.bob.files.get_file(file_id)
    assert isinstance(raw, requests.Response)
    assert raw.content == content

    meta = world.bob.files.get_file_metadata(file_id)
    assert meta["id"] == file_id and meta["post_id"] == attached["id"]
    infos = world.bob.posts.get_file_info_for_post(attached["id"])
    assert [i["id"] for i in infos] == [file_id]


def test_text_upload_keeps_its_bytes(world: World) -> None:
    text = "héllo wörld\n".encode() * 100
    uploaded = world.bob.files.upload_file(
        world.public["id"], {"files": ("hello.txt", text, "text/plain")}
    )
    file_id = uploaded["file_infos"][0]["id"]
    raw = world.bob.files.get_file(file_id)
    # Not JSON, so the driver hands back the raw response.
    assert isinstance(raw, requests.Response)
    assert raw.content == text


# --- History and search --------------------------------------------------------------------------


def test_history_since_before_after(world: World) -> None:
    channel = world.admin.channels.create_channel(
        {
            "team_id": world.team["id"],
            "name": world.unique("history-"),
            "display_name": "History",
            "type": "O",
        }
    )
    cid = channel["id"]
    posts = [post(world, world.admin, cid, f"message {i}") for i in range(5)]
    ids = [p["id"] for p in posts]
    mine = set(ids)

    def ours(result: dict[str, Any]) -> list[str]:
        return [pid for pid in result["order"] if pid in mine]

    page = world.admin.posts.get_posts_for_channel(cid, params={"per_page": 60})
    assert ours(page) == list(reversed(ids))  # newest first
    assert set(page["posts"]) >= mine

    before = world.admin.posts.get_posts_for_channel(cid, params={"before": ids[2]})
    assert ours(before) == [ids[1], ids[0]]

    after = world.admin.posts.get_posts_for_channel(cid, params={"after": ids[2]})
    assert ours(after) == [ids[4], ids[3]]

    since = world.admin.posts.get_posts_for_channel(cid, params={"since": posts[2]["create_at"]})
    assert {ids[3], ids[4]} <= set(since["posts"])
    assert not {ids[0], ids[1]} & set(since["posts"])

    small = world.admin.posts.get_posts_for_channel(cid, params={"page": 0, "per_page": 2})
    assert small["order"] == [ids[4], ids[3]]
    nxt = world.admin.posts.get_posts_for_channel(cid, params={"page": 1, "per_page": 2})
    assert nxt["order"] == [ids[2], ids[1]]

    with pytest.raises(InvalidOrMissingParameters):
        world.admin.posts.get_posts_for_channel(cid, params={"before": "not-an-id"})


def test_search_team_posts(world: World) -> None:
    word = world.unique("zebrafish")
    hit = post(world, world.bob, world.public["id"], f"the {word} swims")
    post(world, world.bob, world.public["id"], "nothing to see")
    result = world.bob.posts.search_for_team_posts(
        world.team["id"], {"terms": word, "is_or_search": False}
    )
    assert result["order"] == [hit["id"]]
    assert result["posts"][hit["id"]]["message"] == f"the {word} swims"
    none = world.bob.posts.search_for_team_posts(
        world.team["id"], {"terms": world.unique("nosuchword"), "is_or_search": False}
    )
    assert none["order"] == []


# --- Statuses ------------------------------------------------------------------------------------


def test_statuses(world: World) -> None:
    status = world.admin.status.get_user_status(world.admin_id)
    assert status["user_id"] == world.admin_id
    assert status["status"] in {"online", "away", "offline", "dnd"}

    changed = world.admin.status.update_user_status(
        world.admin_id, {"user_id": world.admin_id, "status": "dnd"}
    )
    assert changed["status"] == "dnd"
    assert world.bob.status.get_user_status(world.admin_id)["status"] == "dnd"

    many = world.bob.status.get_user_statuses_by_id([world.admin_id, world.bob_id])
    assert {s["user_id"]: s["status"] for s in many}[world.admin_id] == "dnd"
    assert {s["user_id"] for s in many} == {world.admin_id, world.bob_id}


# --- Tokens and logout ---------------------------------------------------------------------------


def test_personal_access_token_login(world: World) -> None:
    created = world.admin.users.create_user_access_token(world.bob_id, {"description": "compat"})
    assert created["user_id"] == world.bob_id
    assert is_valid_id(created["token"])

    bot = driver_for(world.server, token=created["token"])
    me = bot.login()
    assert me["id"] == world.bob_id
    assert bot.client.userid == world.bob_id and bot.client.username == "bob"
    assert world.team["id"] in {t["id"] for t in bot.teams.get_user_teams("me")}
    sent = post(world, bot, world.public["id"], "from a token")
    assert sent["user_id"] == world.bob_id


def test_logout_ends_the_session(world: World) -> None:
    carol, _ = _login(world.server, "carol")
    token = carol.client.token
    assert carol.users.get_user("me")["id"] == world.carol_id
    assert carol.logout() == {"status": "OK"}
    stale = driver_for(world.server, token=token)
    with pytest.raises(NoAccessTokenProvided):
        stale.login()
