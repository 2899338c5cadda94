"""The real `mattermostdriver` and `mmpy-bot` against the cluster through nginx.

Each request may land on any node; events for a change made on one node reach a client whose
websocket nginx routed to another.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests
from mattermostdriver import Driver

from tests.support.clients import BOT_SCRIPT, MMPY_PYTHON, DriverSocket, bot_account
from tests.support.cluster import Cluster
from tests.support.rest import Org, Rest, status_of
from tests.support.wait import GiveUp, wait_until


def _driver(cluster: Cluster, token: str) -> Driver:
    driver = Driver(
        {
            "url": "127.0.0.1",
            "port": cluster.nginx_port,
            "scheme": "http",
            "basepath": "/api/v4",
            "token": token,
            "timeout": 1,
            "keepalive": False,
            "request_timeout": 10,
        }
    )
    driver.login()
    return driver


def test_mattermostdriver_rest_flow_through_nginx(cluster: Cluster, org: Org) -> None:
    alice = _driver(cluster, org.alice.token)
    bob = _driver(cluster, org.bob.token)
    channel_id = org.public["id"]
    root = alice.posts.create_post({"channel_id": channel_id, "message": "cluster root"})
    reply = bob.posts.create_post(
        {"channel_id": channel_id, "message": "cluster reply", "root_id": root["id"]}
    )
    # Whichever node answers, reads see the writes.
    thread = alice.posts.get_thread(root["id"])
    assert set(thread["order"]) == {root["id"], reply["id"]}
    edited = bob.posts.patch_post(reply["id"], {"message": "cluster reply, edited"})
    assert edited["edit_at"] > 0
    bob.reactions.create_reaction(
        {"user_id": org.bob.id, "post_id": root["id"], "emoji_name": "+1"}
    )
    assert [r["emoji_name"] for r in alice.reactions.get_reactions_of_post(root["id"])] == ["+1"]
    content = os.urandom(4096)
    uploaded = alice.files.upload_file(
        channel_id, {"files": ("blob.bin", content, "application/octet-stream")}
    )
    file_id = uploaded["file_infos"][0]["id"]
    for _ in range(3):  # several downloads: nginx spreads them over the nodes
        raw = bob.files.get_file(file_id)
        assert isinstance(raw, requests.Response) and raw.content == content
    found = bob.posts.search_for_team_posts(
        org.team["id"], {"terms": "cluster root", "is_or_search": False}
    )
    assert root["id"] in found["order"]
    alice.posts.delete_post(root["id"])
    history = bob.posts.get_posts_for_channel(channel_id)
    assert root["id"] not in history["order"]


def test_mattermostdriver_websocket_through_nginx_gets_posts_made_on_every_node(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    driver = _driver(cluster, org.alice.token)
    with DriverSocket(driver) as socket:
        socket.wait(lambda m: m.get("event") == "hello", 10, "hello")
        for rest in rests:  # a post made directly on each node
            socket.wait_post(rest.post(org.bob, org.public["id"], f"from {rest}")["id"])
    events = socket.events()
    assert [m["seq"] for m in events] == list(range(len(events)))


def test_mmpy_bot_through_nginx_answers_a_post_made_on_another_node(
    cluster: Cluster, rests: list[Rest], org: Org, tmp_path: Path
) -> None:
    if not MMPY_PYTHON.exists():
        pytest.fail(f"{MMPY_PYTHON} is missing: run `make realtime-deps` (mmpy-bot==2.2.1 venv)")
    admin_rest = rests[0]
    bot_id, bot_token = bot_account(admin_rest, org)
    log_path = tmp_path / "bot.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MATTERMOST_URL": "http://127.0.0.1",
        "MATTERMOST_PORT": str(cluster.nginx_port),
        "BOT_TOKEN": bot_token,
        "SSL_VERIFY": "false",
    }
    with log_path.open("wb") as log:
        bot = subprocess.Popen(
            [str(MMPY_PYTHON), "-c", BOT_SCRIPT], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(
            lambda: bot.poll() is None and status_of(admin_rest, org.admin, bot_id) == "online",
            20,
            "the bot to connect its websocket through nginx",
        )
        for rest in rests:
            ping = rest.post(org.alice, org.public["id"], "ping")

            def answered(ping_id: str = ping["id"]) -> bool:
                if bot.poll() is not None:
                    raise GiveUp(f"the bot exited:\n{log_path.read_text()[-3000:]}")
                posts = admin_rest.call(
                    "GET", f"/channels/{org.public['id']}/posts", org.alice.token
                )
                return any(
                    p["user_id"] == bot_id and p["root_id"] == ping_id and p["message"] == "pong"
                    for p in posts["posts"].values()
                )

            wait_until(answered, 20, f"the bot's pong to a ping posted on {rest}")
    finally:
        bot.terminate()
        try:
            bot.wait(10)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait(5)
