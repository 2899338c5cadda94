"""The official web app's data layer against a real `hubbub serve`.

`node/startup.js` runs the web app's start-up actions through `mattermost-redux` 11.9.0 and
`@mattermost/client` 11.9.0 (exact versions in node/package-lock.json, installed by
`make webapp-deps`) and prints the resulting Redux state; the assertions here are on that state:
the roles the message box depends on, the sidebar built from categories, the preferences, the
permissions the web app computes from them; then threads (a reply arriving over the websocket
into the store, counts, the list, marking read), synced drafts reaching a second device, custom
emoji in `entities.emojis` and the avatar URL; the channel's posts, a picture uploaded and
posted, reactions, and another person's post, edit, reaction and deletion reaching the store
over the websocket as the web app's handlers put them there. A second test checks that the client
configuration carries every key of the web app's `ClientConfig` type.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.node import Node, start_node
from tests.support.rest import PASSWORD, Rest, make_people

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def live_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = start_node(tmp_path_factory.mktemp("webapp-node"))
    try:
        yield started
    finally:
        started.server.stop()


def _node_modules() -> None:
    if shutil.which("node") is None:
        pytest.fail("node not found: install Debian's nodejs and npm (make services does)")
    if not (NODE_DIR / "node_modules" / "mattermost-redux").is_dir():
        pytest.fail(f"{NODE_DIR}/node_modules is missing: run `make webapp-deps` (npm ci)")


@pytest.fixture(scope="module")
def run(live_node: Node) -> dict[str, Any]:
    """Sets up a team with a public, a private and a direct channel for alice, then runs the
    web app's start-up as alice and returns what startup.js reported."""
    _node_modules()
    rest = Rest(live_node.url)
    try:
        people = make_people(rest)
        team = rest.team(people.admin)
        for member in (people.alice, people.bob):
            rest.join_team(people.admin, team["id"], member)
        public = rest.channel(people.admin, team["id"], "O")
        private = rest.channel(people.admin, team["id"], "P")
        for channel in (public, private):
            rest.join_channel(people.admin, channel["id"], people.alice)
        rest.join_channel(people.admin, public["id"], people.bob)
        dm = rest.call(
            "POST", "/channels/direct", people.alice.token, [people.alice.id, people.bob.id], 201
        )
        gm = rest.call(
            "POST",
            "/channels/group",
            people.alice.token,
            [people.alice.id, people.bob.id, people.admin.id],
            201,
        )
    finally:
        rest.close()
    emoji_png = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 160, 90)).save(emoji_png, "PNG")
    proc = subprocess.run(
        [str(shutil.which("node")), "--experimental-websocket", str(NODE_DIR / "startup.js")],
        cwd=NODE_DIR,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HUBBUB_URL": live_node.url,
            "LOGIN_ID": people.alice.username,
            "PASSWORD": PASSWORD,
            "TEAM_ID": team["id"],
            "CHANNEL_ID": public["id"],
            "PRIVATE_ID": private["id"],
            "DM_ID": dm["id"],
            "GM_ID": gm["id"],
            "BOB_LOGIN_ID": people.bob.username,
            "EMOJI_PNG": base64.b64encode(emoji_png.getvalue()).decode(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"startup.js printed nothing (exit {proc.returncode}): {proc.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert "fatal" not in report, f"{report['fatal']}\nrequests: {report['requests']}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    report["ids"] = {
        "alice": people.alice.id,
        "team": team["id"],
        "public": public["id"],
        "private": private["id"],
        "dm": dm["id"],
        "gm": gm["id"],
        "bob": people.bob.id,
        "admin": people.admin.id,
    }
    return report


def test_every_start_up_request_succeeds(run: dict[str, Any]) -> None:
    failed = [r for r in run["requests"] if r["status"] >= 400]
    assert failed == []
    # The web app's upload (an XMLHttpRequest) counts only a 201 as success.
    uploads = [r["status"] for r in run["requests"] if r["path"].startswith("/api/v4/files")]
    assert uploads == [201, 201]
    paths = {f"{r['method']} {r['path'].split('?')[0]}" for r in run["requests"]}
    uid, tid = run["ids"]["alice"], run["ids"]["team"]
    for expected in (
        "GET /api/v4/config/client",
        "GET /api/v4/license/client",
        "GET /api/v4/users/me/preferences",
        "GET /api/v4/limits/server",
        "POST /api/v4/roles/names",
        "GET /api/v4/plugins/webapp",
        f"GET /api/v4/users/{uid}/teams/{tid}/channels/categories",
        f"PUT /api/v4/users/{uid}/preferences",
        f"PUT /api/v4/users/{uid}/teams/{tid}/channels/categories",
        f"POST /api/v4/users/{uid}/teams/{tid}/channels/categories",
        "POST /api/v4/users/group_channels",
        f"GET /api/v4/channels/{run['ids']['public']}/stats",
        f"GET /api/v4/users/{uid}/channels/{run['ids']['public']}/posts/unread",
        "POST /api/v4/users/ids",
        "POST /api/v4/users/status/ids",
        "POST /api/v4/channels/members/me/view",
        f"GET /api/v4/posts/{run['apps']['rootId']}/thread",
        f"GET /api/v4/channels/{run['ids']['public']}/posts",
        "POST /api/v4/files",
        "POST /api/v4/reactions",
        "POST /api/v4/drafts",
        "GET /api/v4/emoji",
    ):
        assert expected in paths, f"{expected} not requested; requests: {sorted(paths)}"
    # No error was logged into the store by any action.
    for stage in ("afterStartUp", "afterActions", "secondDevice", "apps"):
        assert run[stage]["errors"] == [], stage


def test_roles_reach_the_store_and_grant_what_the_ui_needs(run: dict[str, Any]) -> None:
    state = run["afterStartUp"]
    assert state["serverVersion"]
    assert {"system_user", "team_user", "channel_user"} <= set(state["roles"])
    assert "team_admin" not in state["roles"]  # alice is no team admin
    assert state["pendingRoles"] == []
    assert "create_post" in state["roles"]["channel_user"]
    # What decides whether the message box, the reaction button and uploads are enabled.
    assert state["can"] == {
        "postInChannel": True,
        "reactInChannel": True,
        "uploadInChannel": True,
        "postInPrivate": True,
        "createPublicChannel": True,
        "manageTeam": False,
        "manageSystem": False,
        "createDirectChannel": True,
    }
    assert state["collapsedThreads"] is True  # CollapsedThreads: always_on
    assert state["config"]["CollapsedThreads"] == "always_on"
    assert state["config"]["AllowSyncedDrafts"] == "true"
    assert state["config"]["EnableCustomEmoji"] == "true"
    assert state["config"]["EnableEmojiPicker"] == "true"
    assert state["license"] == {"IsLicensed": "false"}
    assert state["serverLimits"]["maxUsersLimit"] == 0


def test_the_sidebar_is_built_from_categories(run: dict[str, Any]) -> None:
    ids = run["ids"]
    state = run["afterStartUp"]
    assert ids["team"] in state["myTeams"]
    assert {ids["public"], ids["private"], ids["dm"]} <= set(state["myChannels"])
    by_type = {c["type"]: c for c in state["categories"]}
    assert state["categoryOrder"] == [
        f"favorites_{ids['alice']}_{ids['team']}",
        f"channels_{ids['alice']}_{ids['team']}",
        f"direct_messages_{ids['alice']}_{ids['team']}",
    ]
    assert {ids["public"], ids["private"]} <= set(by_type["channels"]["channel_ids"])
    assert sorted(by_type["direct_messages"]["channel_ids"]) == sorted([ids["dm"], ids["gm"]])
    # The sidebar names the group message by its members (POST /users/group_channels).
    assert sorted(state["gmMembers"]) == sorted([ids["alice"], ids["bob"], run["ids"]["admin"]])

    after = run["afterActions"]
    assert "error" not in after["favorited"] and "error" not in after["created"]
    by_type = {c["type"]: c for c in after["categories"]}
    assert by_type["favorites"]["channel_ids"] == [ids["public"]]
    [custom] = [c for c in after["categories"] if c["type"] == "custom"]
    assert custom["display_name"] == "Projects"
    assert after["created"]["data"]["id"] == custom["id"]
    assert custom["channel_ids"] == [ids["private"], ids["dm"]]
    assert after["categoryOrder"][:2] == [by_type["favorites"]["id"], custom["id"]]
    assert ids["public"] not in by_type["channels"]["channel_ids"]
    assert ids["private"] not in by_type["channels"]["channel_ids"]
    assert by_type["direct_messages"]["channel_ids"] == [ids["gm"]]


def test_preferences_persist_across_devices(run: dict[str, Any]) -> None:
    key = "display_settings--use_military_time"
    expected = {
        "user_id": run["ids"]["alice"],
        "category": "display_settings",
        "name": "use_military_time",
        "value": "true",
    }
    assert run["afterActions"]["preferences"][key] == expected
    assert run["secondDevice"]["preferences"][key] == expected
    # The favorite made on the first device is in the second one's sidebar.
    favorites = [c for c in run["secondDevice"]["categories"] if c["type"] == "favorites"]
    assert favorites[0]["channel_ids"] == [run["ids"]["public"]]


def test_a_reply_makes_the_thread_unread_and_reading_clears_it(run: dict[str, Any]) -> None:
    apps = run["apps"]
    root = apps["rootId"]
    # The reply reached the store through the websocket's thread_updated, as in the web app.
    assert apps["fromSocket"]["reply_count"] == 1
    assert apps["fromSocket"]["unread_replies"] == 1
    assert apps["fromSocket"]["is_following"] is True
    assert [p["id"] for p in apps["fromSocket"]["participants"]] == [run["ids"]["bob"]]
    assert apps["countsUnread"]["total_unread_threads"] == 1
    assert apps["listed"] == [root]
    assert apps["threadsInTeam"] == [root]
    assert "error" not in apps["read"]
    assert apps["afterRead"]["thread"]["unread_replies"] == 0
    assert apps["afterRead"]["counts"]["total_unread_threads"] == 0
    assert "thread_read_changed" in apps["socketEvents"]


def test_a_draft_reaches_the_second_device(run: dict[str, Any]) -> None:
    apps = run["apps"]
    assert apps["draft"]["message"] == "unsent words"
    assert apps["draftEvent"]["message"] == "unsent words"
    assert apps["draftEvent"]["channel_id"] == run["ids"]["public"]
    assert [d["message"] for d in apps["drafts"]] == ["unsent words"]


def test_custom_emoji_reach_the_store(run: dict[str, Any]) -> None:
    apps = run["apps"]
    assert apps["emojiCreated"]["data"]["name"] == "hubbub-wave"
    assert [e["name"] for e in apps["customEmoji"]] == ["hubbub-wave"]
    assert "emoji_added" in apps["socketEvents"]


def test_posts_files_and_reactions_go_through_the_store(run: dict[str, Any]) -> None:
    """Posting with a picture and reacting with the data layer's own actions, and another
    person's post, edit, reaction and deletion arriving over the websocket into the store."""
    posts, ids = run["apps"]["posts"], run["ids"]
    visit = posts["visit"]
    assert visit["errors"] == []
    assert visit["stats"]["member_count"] == 3  # the admin who made it, alice and bob
    assert visit["unread"] == [run["apps"]["rootId"]]
    assert visit["bobProfile"] and visit["bobStatus"] in {"online", "away", "offline"}
    assert posts["threadError"] is None
    assert posts["inThread"] == [run["apps"]["replyId"]]  # the store keeps a root's replies
    # Since just before Bob's post: his post (deleted by now, so the app can drop it) and the
    # post his reaction touched.
    assert posts["bobPostId"] in posts["changed"]
    # Collapsed threads: opening the channel loads the thread's root without its reply.
    assert posts["loaded"] == [run["apps"]["rootId"]]
    created = posts["created"]
    assert (created["message"], created["user_id"]) == ("a picture", ids["alice"])
    assert created["file_ids"] == [posts["uploadedId"]]
    [info] = posts["createdFiles"]
    assert (info["id"], info["name"], info["mime_type"]) == (
        posts["uploadedId"],
        "picture.png",
        "image/png",
    )
    assert "error" not in posts["reacted"] and "error" not in posts["reactedCustom"]
    mine = [f"{ids['alice']}-smile", f"{ids['alice']}-hubbub-wave"]
    assert posts["reactionsWithBobs"] == sorted([*mine, f"{ids['bob']}-+1"])
    assert posts["reactionsAfter"] == sorted(mine)
    arrived = posts["bobsArrived"]
    assert arrived["post"]["message"] == "from bob"
    assert arrived["fileIds"] == [posts["bobFileId"]]
    assert arrived["file"]["name"] == "bobs.png"
    assert posts["bobsEdited"]["message"] == "from bob, edited"
    assert posts["bobsEdited"]["edit_at"] > 0
    assert posts["bobsState"] == "DELETED"
    # Newest first, each post once (the author's own `posted` replaced its pending post).
    assert posts["order"][:2] == [posts["bobPostId"], created["id"]]
    assert len(posts["order"]) == len(set(posts["order"]))


def test_the_avatar_url_answers_an_image(run: dict[str, Any]) -> None:
    avatar = run["apps"]["avatar"]
    assert avatar["url"].endswith(f"/api/v4/users/{run['ids']['alice']}/image?_=1")
    assert (avatar["status"], avatar["type"]) == (200, "image/png")
    assert avatar["size"] > 100


def _client_config_keys() -> list[str]:
    source = (
        NODE_DIR / "node_modules" / "@mattermost" / "types" / "lib" / "config.d.ts"
    ).read_text()
    match = re.search(r"export type ClientConfig = \{(.*?)\n\};", source, re.S)
    assert match, "ClientConfig not found in @mattermost/types"
    return re.findall(r"^\s+([A-Za-z0-9_]+)\??:", match.group(1), re.M)


def test_client_config_has_every_key_the_web_app_reads(live_node: Node) -> None:
    _node_modules()
    keys = _client_config_keys()
    assert len(keys) > 200
    config = httpx.get(live_node.url + "/api/v4/config/client?format=old", timeout=10).json()
    missing = [k for k in keys if k not in config]
    assert missing == []
    assert all(isinstance(v, str) for v in config.values())
