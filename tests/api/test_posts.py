"""Posts over the API: create, idempotent retry, replies, get/ETag, edit, pin, delete, ephemeral,
permissions and bad input; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import Select, event, select

from hubbub.app import Hubbub
from hubbub.cluster.events import Broadcast, Event
from hubbub.services.channel_model import insert_member
from hubbub.services.post_statements import PENDING_POST, POST_CONTEXT
from hubbub.store.tables import channel_members, channels, posts
from tests.support.api import API, User
from tests.support.posting import count_posts, make_world


async def channel_row(node: Hubbub, channel_id: str) -> dict[str, object]:
    async with node.db.read() as conn:
        row = (await conn.execute(select(channels).where(channels.c.id == channel_id))).one()
    return dict(row._mapping)


async def member_row(node: Hubbub, channel_id: str, user_id: str) -> dict[str, object]:
    async with node.db.read() as conn:
        row = (
            await conn.execute(
                select(channel_members).where(
                    channel_members.c.channel_id == channel_id,
                    channel_members.c.user_id == user_id,
                )
            )
        ).one()
    return dict(row._mapping)


async def test_create_post_shape_counters_and_posted_event(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    before = await channel_row(node, w.channel["id"])
    post = await w.post(w.alice, "hi @" + w.bob.username + " and @" + w.carol.username)
    assert len(post["id"]) == 26 and post["user_id"] == w.alice.id
    assert post["channel_id"] == w.channel["id"] and post["root_id"] == ""
    assert post["edit_at"] == 0 and post["delete_at"] == 0 and post["create_at"] > 0
    assert post["props"] == {} and post["file_ids"] == [] and post["participants"] is None
    assert post["metadata"]["reactions"] == [] and post["metadata"]["files"] == []
    assert "has_reactions" not in post

    after = await channel_row(node, w.channel["id"])
    assert after["last_post_at"] == post["create_at"]
    assert after["last_root_post_at"] == post["create_at"]
    assert after["total_msg_count"] == before["total_msg_count"] + 1  # type: ignore[operator]
    assert after["total_msg_count_root"] == before["total_msg_count_root"] + 1  # type: ignore[operator]
    assert after["event_seq"] == before["event_seq"] + 1  # type: ignore[operator]
    # The poster's membership is marked read; the mentioned member (not carol) gets a mention.
    mine = await member_row(node, w.channel["id"], w.alice.id)
    assert mine["last_viewed_at"] == post["create_at"]
    assert mine["msg_count"] == after["total_msg_count"]
    bob = await member_row(node, w.channel["id"], w.bob.id)
    assert bob["mention_count"] == 1

    [event] = node.events.named("posted")
    assert event.broadcast.channel_id == w.channel["id"]
    assert json.loads(event.data["post"]) == post
    assert json.loads(event.data["mentions"]) == [w.bob.id]
    assert event.data["sender_name"] == "@" + w.alice.username
    assert event.data["channel_type"] == "O"
    assert event.data["channel_name"] == w.channel["name"]
    assert event.data["channel_display_name"] == w.channel["display_name"]
    assert event.data["team_id"] == w.team["id"]
    assert event.data["set_online"] is True
    assert event.extra["event_seq"] == after["event_seq"]


async def test_posted_without_mentions_and_set_online_false(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    await api.call(
        "POST",
        "/posts?set_online=false",
        token=w.bob.token,
        json={"channel_id": w.channel["id"], "message": "quiet"},
        expect=201,
    )
    [event] = node.events.named("posted")
    assert "mentions" not in event.data
    assert event.data["set_online"] is False
    status = await api.call("GET", f"/users/{w.bob.id}/status", token=w.bob.token)
    assert status["status"] == "offline"
    await w.post(w.bob, "loud")
    status = await api.call("GET", f"/users/{w.bob.id}/status", token=w.bob.token)
    assert status["status"] == "online" and status["manual"] is False


async def test_message_length_limit(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    await w.post(w.alice, "é" * 16383)
    body = await api.call(
        "POST",
        "/posts",
        token=w.alice.token,
        json={"channel_id": w.channel["id"], "message": "x" * 16384},
        expect=400,
    )
    assert body["id"] == "model.post.is_valid.msg.app_error"


async def test_retry_with_pending_post_id_returns_the_original(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    pending = f"{w.alice.id}:1700000000000"  # what the web app sends: longer than an id
    first = await w.post(w.alice, "once", pending_post_id=pending)
    again = await w.post(w.alice, "once", pending_post_id=pending)
    assert again["id"] == first["id"]
    assert first["pending_post_id"] == again["pending_post_id"] == pending
    assert await count_posts(node, channel_id=w.channel["id"]) == 1
    assert len(node.events.named("posted")) == 1
    # The same pending id from another user is another post.
    other = await w.post(w.bob, "once", pending_post_id=pending)
    assert other["id"] != first["id"]
    # Later reads do not echo it (Mattermost does not store it).
    fetched = await api.call("GET", f"/posts/{first['id']}", token=w.alice.token)
    assert fetched["pending_post_id"] == ""


async def test_concurrent_retries_create_one_post(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    results = await asyncio.gather(
        *(w.post(w.alice, "race", pending_post_id="pending-race-1") for _ in range(5))
    )
    assert len({r["id"] for r in results}) == 1
    assert await count_posts(node, channel_id=w.channel["id"]) == 1
    assert len(node.events.named("posted")) == 1


async def test_replies_update_root_and_are_validated(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    r1 = await w.post(w.bob, "r1", root_id=root["id"])
    r2 = await w.post(w.admin, "r2", root_id=root["id"])
    assert r2["reply_count"] == 2 and r2["root_id"] == root["id"]
    got = await api.call("GET", f"/posts/{root['id']}", token=w.bob.token)
    assert got["reply_count"] == 2
    assert got["last_reply_at"] == r2["create_at"]
    assert [u["id"] for u in got["participants"]] == [w.bob.id, w.admin.id]
    assert got["update_at"] >= r2["create_at"]
    row = await channel_row(node, w.channel["id"])
    assert row["total_msg_count"] == 3 and row["total_msg_count_root"] == 1
    assert row["last_root_post_at"] == root["create_at"]

    def reply(root_id: str) -> dict[str, str]:
        return {"channel_id": w.channel["id"], "message": "x", "root_id": root_id}

    bad = await api.call("POST", "/posts", token=w.bob.token, json=reply(r1["id"]), expect=400)
    assert bad["id"] == "api.post.create_post.root_id.app_error"
    bad = await api.call("POST", "/posts", token=w.bob.token, json=reply("a" * 26), expect=400)
    assert bad["id"] == "api.post.create_post.root_id.app_error"
    bad = await api.call("POST", "/posts", token=w.bob.token, json=reply("nope"), expect=400)
    assert bad["id"] == "model.post.is_valid.root_id.app_error"
    elsewhere = await api.new_channel(w.alice.token, w.team["id"])
    foreign = await w.post(w.alice, "other channel", channel_id=elsewhere["id"])
    bad = await api.call(
        "POST", "/posts", token=w.alice.token, json=reply(foreign["id"]), expect=400
    )
    assert bad["id"] == "api.post.create_post.channel_root_id.app_error"
    assert await count_posts(node, root_id=root["id"]) == 2


async def test_get_post_etag_and_304(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    post = await w.post(w.alice, "tagged")
    resp = await api.raw("GET", f"/posts/{post['id']}", token=w.bob.token)
    assert resp.status_code == 200
    tag = resp.headers["ETag"]
    assert tag.endswith(f".{post['id']}.{post['update_at']}")
    same = await api.raw(
        "GET", f"/posts/{post['id']}", token=w.bob.token, headers={"If-None-Match": tag}
    )
    assert same.status_code == 304 and same.headers["ETag"] == tag and not same.content
    await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=w.alice.token, json={"message": "changed"}
    )
    changed = await api.raw(
        "GET", f"/posts/{post['id']}", token=w.bob.token, headers={"If-None-Match": tag}
    )
    assert changed.status_code == 200 and changed.json()["message"] == "changed"


async def test_patch_sets_edit_at_and_publishes_post_edited(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    post = await w.post(w.alice, "first", props={"a": "1"})
    pinned = await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=w.alice.token, json={"is_pinned": True}
    )
    assert pinned["edit_at"] == 0 and pinned["is_pinned"] and pinned["message"] == "first"
    edited = await api.call(
        "PUT",
        f"/posts/{post['id']}/patch",
        token=w.alice.token,
        json={"message": "second", "props": {"b": "2"}},
    )
    assert edited["message"] == "second" and edited["props"] == {"b": "2"}
    assert edited["edit_at"] > 0 and edited["update_at"] > pinned["update_at"]
    assert edited["is_pinned"] is True
    events = node.events.named("post_edited")
    assert len(events) == 2
    assert json.loads(events[-1].data["post"])["message"] == "second"
    assert events[-1].broadcast.channel_id == w.channel["id"]
    # Another member may not edit; a system admin may.
    denied = await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=w.bob.token, json={"message": "x"}, expect=403
    )
    assert denied["id"] == "api.context.permissions.app_error"
    by_admin = await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=w.admin.token, json={"message": "moderated"}
    )
    assert by_admin["message"] == "moderated"


async def test_full_update_requires_matching_id(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    post = await w.post(w.alice, "first", props={"keep": "no"})
    body = {"id": post["id"], "message": "replaced"}
    updated = await api.call("PUT", f"/posts/{post['id']}", token=w.alice.token, json=body)
    assert updated["message"] == "replaced" and updated["props"] == {}
    assert updated["edit_at"] > 0
    other = await w.post(w.alice, "other")
    bad = await api.call(
        "PUT",
        f"/posts/{post['id']}",
        token=w.alice.token,
        json={**body, "id": other["id"]},
        expect=400,
    )
    assert bad["id"] == "api.context.invalid_param.app_error"
    await api.call("PUT", f"/posts/{post['id']}", token=w.bob.token, json=body, expect=403)


async def test_delete_root_deletes_replies(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    reply = await w.post(w.bob, "reply", root_id=root["id"])
    await api.call("DELETE", f"/posts/{root['id']}", token=w.bob.token, expect=403)
    assert await api.call("DELETE", f"/posts/{root['id']}", token=w.alice.token) == {"status": "OK"}
    await api.call("GET", f"/posts/{root['id']}", token=w.alice.token, expect=404)
    await api.call("GET", f"/posts/{reply['id']}", token=w.alice.token, expect=404)
    await api.call("GET", f"/posts/{root['id']}/thread", token=w.alice.token, expect=404)
    [event] = node.events.named("post_deleted")
    deleted = json.loads(event.data["post"])
    assert deleted["id"] == root["id"] and deleted["delete_at"] > 0 and deleted["message"] == ""
    assert event.broadcast.channel_id == w.channel["id"]
    # A system admin sees deleted posts only when asking for them.
    await api.call(
        "GET", f"/posts/{reply['id']}?include_deleted=true", token=w.bob.token, expect=403
    )
    seen = await api.call("GET", f"/posts/{reply['id']}?include_deleted=true", token=w.admin.token)
    assert seen["delete_at"] > 0 and seen["message"] == "" and seen["metadata"] == {}
    await api.call("DELETE", f"/posts/{root['id']}", token=w.alice.token, expect=404)


async def test_deleting_a_reply_updates_the_thread(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    first = await w.post(w.bob, "first", root_id=root["id"])
    second = await w.post(w.bob, "second", root_id=root["id"])
    await api.call("DELETE", f"/posts/{second['id']}", token=w.admin.token)
    got = await api.call("GET", f"/posts/{root['id']}", token=w.alice.token)
    assert got["reply_count"] == 1 and got["last_reply_at"] == first["create_at"]
    thread = await api.call("GET", f"/posts/{root['id']}/thread", token=w.alice.token)
    assert thread["order"] == [first["id"], root["id"]]


async def test_pin_unpin_and_pinned_list(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    one = await w.post(w.alice, "one")
    two = await w.post(w.alice, "two")
    await w.post(w.alice, "three")
    # Any reader may pin, not only the author.
    assert await api.call("POST", f"/posts/{two['id']}/pin", token=w.bob.token) == {"status": "OK"}
    await api.call("POST", f"/posts/{one['id']}/pin", token=w.bob.token)
    pinned = await api.call("GET", f"/channels/{w.channel['id']}/pinned", token=w.bob.token)
    assert pinned["order"] == [one["id"], two["id"]]
    assert all(p["is_pinned"] for p in pinned["posts"].values())
    await api.call("POST", f"/posts/{two['id']}/unpin", token=w.alice.token)
    pinned = await api.call("GET", f"/channels/{w.channel['id']}/pinned", token=w.bob.token)
    assert pinned["order"] == [one["id"]]
    assert len(node.events.named("post_edited")) == 3
    # Pinning needs `read_channel_content` on the channel (Mattermost): channel members have it,
    # a team member outside even a public channel does not.
    await api.call("POST", f"/posts/{one['id']}/pin", token=w.carol.token, expect=403)
    private = await w.private_channel()
    secret = await w.post(w.alice, "secret", channel_id=private["id"])
    await api.call("POST", f"/posts/{secret['id']}/pin", token=w.carol.token, expect=403)
    await api.call("GET", f"/channels/{private['id']}/pinned", token=w.carol.token, expect=403)


async def test_ephemeral_post_goes_to_one_user_and_is_not_stored(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    body = {"user_id": w.bob.id, "post": {"channel_id": w.channel["id"], "message": "psst"}}
    post = await api.call("POST", "/posts/ephemeral", token=w.admin.token, json=body, expect=201)
    assert post["type"] == "system_ephemeral" and post["message"] == "psst"
    assert post["user_id"] == w.admin.id and post["channel_id"] == w.channel["id"]
    [event] = node.events.named("ephemeral_message")
    assert event.broadcast.user_id == w.bob.id
    assert json.loads(event.data["post"])["id"] == post["id"]
    await api.call("GET", f"/posts/{post['id']}", token=w.admin.token, expect=404)
    assert await count_posts(node, channel_id=w.channel["id"]) == 0
    denied = await api.call("POST", "/posts/ephemeral", token=w.alice.token, json=body, expect=403)
    assert denied["id"] == "api.context.permissions.app_error"
    await api.call(
        "POST", "/posts/ephemeral", token=w.admin.token, json={"user_id": w.bob.id}, expect=400
    )


async def test_bot_posts_are_marked_and_ephemeral_posts_need_the_permission(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    bot = await api.call(
        "POST", "/bots", token=admin.token, json={"username": "helper"}, expect=201
    )
    token = await api.call(
        "POST",
        f"/users/{bot['user_id']}/tokens",
        token=admin.token,
        json={"description": "t"},
        expect=201,
    )
    await api.add_to_team(admin.token, w.team["id"], bot["user_id"])
    await api.add_to_channel(w.alice.token, w.channel["id"], bot["user_id"])
    posted = await api.call(
        "POST",
        "/posts",
        token=token["token"],
        json={"channel_id": w.channel["id"], "message": "beep"},
        expect=201,
    )
    assert posted["props"] == {"from_bot": "true"}
    # `create_post_ephemeral` is the system admin's alone by default, bots included (as in
    # Mattermost); a role that carries it lets the bot send them.
    body = {"user_id": w.bob.id, "post": {"channel_id": w.channel["id"], "message": "psst"}}
    denied = await api.call("POST", "/posts/ephemeral", token=token["token"], json=body, expect=403)
    assert denied["message"].endswith("create_post_ephemeral.")
    post_all = await api.call("GET", "/roles/name/system_post_all", token=admin.token)
    await api.call(
        "PUT",
        f"/roles/{post_all['id']}/patch",
        token=admin.token,
        json={"permissions": [*post_all["permissions"], "create_post_ephemeral"]},
    )
    await api.call(
        "PUT",
        f"/users/{bot['user_id']}/roles",
        token=admin.token,
        json={"roles": "system_user system_post_all"},
    )
    await api.call("POST", "/posts/ephemeral", token=token["token"], json=body, expect=201)


async def test_non_members_cannot_read_or_post_in_a_private_channel(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    private = await w.private_channel()
    secret = await w.post(w.alice, "secret", channel_id=private["id"])
    carol = w.carol.token
    await api.call("GET", f"/posts/{secret['id']}", token=carol, expect=403)
    await api.call("GET", f"/posts/{secret['id']}/thread", token=carol, expect=403)
    await api.call("GET", f"/channels/{private['id']}/posts", token=carol, expect=403)
    denied = await api.call(
        "POST",
        "/posts",
        token=carol,
        json={"channel_id": private["id"], "message": "hi"},
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"
    listed = await api.call("POST", "/posts/ids", token=carol, json=[secret["id"]])
    assert listed == []
    # Team members read public channels they are not in, but cannot post there.
    public = await w.post(w.alice, "public")
    assert (await api.call("GET", f"/posts/{public['id']}", token=carol))["id"] == public["id"]
    await api.call(
        "POST",
        "/posts",
        token=carol,
        json={"channel_id": w.channel["id"], "message": "x"},
        expect=403,
    )
    await api.call("GET", f"/posts/{public['id']}", expect=401)


async def test_posts_by_ids(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    one = await w.post(w.alice, "one")
    two = await w.post(w.alice, "two")
    found = await api.call(
        "POST", "/posts/ids", token=w.bob.token, json=[one["id"], two["id"], "z" * 26]
    )
    assert [p["id"] for p in found] == [two["id"], one["id"]]
    await api.call("POST", "/posts/ids", token=w.bob.token, json=[], expect=400)


async def test_bad_input(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    token = w.alice.token
    raw = await api.raw(
        "POST",
        "/posts",
        token=token,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["id"] == "api.context.invalid_body_param.app_error"
    cid = w.channel["id"]
    for body in (
        {"message": "no channel"},
        {"channel_id": "short", "message": "x"},
        {"channel_id": cid, "message": 5},
        {"channel_id": cid, "message": "x", "file_ids": "abc"},
        {"channel_id": cid, "message": "x", "file_ids": [1]},
        {"channel_id": cid, "message": "x", "props": []},
        {"channel_id": cid, "message": "x", "type": "system_join_channel"},
        {"channel_id": cid, "message": "x", "pending_post_id": 7},
        {"channel_id": cid, "message": "x", "file_ids": ["a" * 26] * 11},
    ):
        await api.call("POST", "/posts", token=token, json=body, expect=400)
    await api.call("POST", "/posts", token=token, json=[cid], expect=400)
    await api.call(
        "POST", "/posts", token=token, json={"channel_id": "c" * 26, "message": "x"}, expect=404
    )
    post = await w.post(w.alice, "x")
    await api.call("GET", "/posts/not-an-id", token=token, expect=400)
    await api.call("GET", f"/posts/{'p' * 26}", token=token, expect=404)
    await api.call("DELETE", f"/posts/{'p' * 26}", token=token, expect=404)
    await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=token, json={"message": 1}, expect=400
    )
    await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=token, json={"is_pinned": "yes"}, expect=400
    )
    await api.call(
        "PUT", f"/posts/{post['id']}/patch", token=token, json={"props": "x"}, expect=400
    )
    await api.call(
        "PUT",
        f"/posts/{post['id']}/patch",
        token=token,
        json={"message": "y" * 16384},
        expect=400,
    )


async def test_posting_in_a_direct_channel_mentions_the_other_user(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    dm = await api.call(
        "POST", "/channels/direct", token=w.alice.token, json=[w.alice.id, w.bob.id], expect=201
    )
    await w.post(w.alice, "hey", channel_id=dm["id"])
    [event] = node.events.named("posted")
    assert json.loads(event.data["mentions"]) == [w.bob.id]
    assert event.data["channel_type"] == "D" and event.data["team_id"] == ""
    assert event.data["channel_display_name"] == w.alice.username
    async with node.db.read() as conn:
        row = (
            await conn.execute(select(posts.c.channel_id).where(posts.c.channel_id == dm["id"]))
        ).one()
    assert row.channel_id == dm["id"]


async def test_files_show_in_metadata_and_go_with_the_post(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    uploaded = await api.call(
        "POST",
        f"/files?channel_id={w.channel['id']}",
        token=w.alice.token,
        files=[("files", ("notes.txt", b"some notes"))],
        expect=201,
    )
    file_id = uploaded["file_infos"][0]["id"]
    post = await w.post(w.alice, "see file", file_ids=[file_id, "f" * 26])
    assert post["file_ids"] == [file_id]
    assert [f["id"] for f in post["metadata"]["files"]] == [file_id]
    assert post["metadata"]["files"][0]["post_id"] == post["id"]
    [event] = node.events.named("posted")
    assert json.loads(event.data["post"])["metadata"]["files"] == post["metadata"]["files"]
    page = await api.call("GET", f"/channels/{w.channel['id']}/posts", token=w.bob.token)
    assert page["posts"][post["id"]]["metadata"]["files"] == post["metadata"]["files"]
    await api.call("DELETE", f"/posts/{post['id']}", token=w.alice.token)
    await api.call("GET", f"/files/{file_id}/info", token=w.alice.token, expect=404)


async def test_hostile_values_are_not_server_errors(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    nul = {"channel_id": w.channel["id"], "message": "a\u0000b"}
    await api.call("POST", "/posts", token=w.alice.token, json=nul, expect=400)
    post = await w.post(w.alice, "fine", props={"nested": {"deep": [1, None, "x"]}})
    path = f"/channels/{w.channel['id']}/posts"
    await api.call("GET", f"{path}?since={10**20}", token=w.bob.token, expect=400)
    huge = 2**63 - 1
    for query in (f"?since={huge}", f"?page={huge}&per_page=200", "?per_page=-5"):
        await api.call("GET", path + query, token=w.bob.token)
    await api.call(
        "GET",
        f"/posts/{post['id']}/thread?perPage=5&fromCreateAt={huge}",
        token=w.bob.token,
    )
    await api.call(
        "PUT",
        "/users/me/status",
        token=w.bob.token,
        json={"user_id": w.bob.id, "status": "dnd", "dnd_end_time": 2**63 - 1},
    )


async def test_retries_are_checked_against_the_channel_first(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    first = await w.post(w.alice, "once", pending_post_id="pending-check-1")
    private = await api.new_channel(w.bob.token, w.team["id"], "P")
    # The same pending id in a channel alice may not post to, or one that does not exist, is
    # refused before the earlier post is found.

    async def retry(channel_id: str, expect: int) -> dict[str, str]:
        body = {"channel_id": channel_id, "message": "once", "pending_post_id": "pending-check-1"}
        result: dict[str, str] = await api.call(
            "POST", "/posts", token=w.alice.token, json=body, expect=expect
        )
        return result

    assert (await retry(private["id"], 403))["id"] == "api.context.permissions.app_error"
    await retry("c" * 26, 404)
    await api.call("DELETE", f"/channels/{w.channel['id']}", token=w.alice.token)
    archived = await retry(w.channel["id"], 403)
    assert archived["id"] == "api.post.create_post.can_not_post_to_deleted.error"
    assert first["pending_post_id"] == "pending-check-1"


async def test_posting_sets_the_author_online_once(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    await node.statuses.set_status(w.bob.id, "online", manual=False)
    await node.statuses.set_status(w.bob.id, "offline", manual=False)
    changes = len(node.events.named("status_change"))
    await w.post(w.bob, "back")
    online = await api.call("GET", f"/users/{w.bob.id}/status", token=w.bob.token)
    assert online["status"] == "online" and online["manual"] is False
    assert len(node.events.named("status_change")) == changes + 1
    # Already online and recently active: nothing is written, no event.
    await w.post(w.bob, "again")
    assert await api.call("GET", f"/users/{w.bob.id}/status", token=w.bob.token) == online
    assert len(node.events.named("status_change")) == changes + 1
    # A manual status is left alone.
    body = {"user_id": w.bob.id, "status": "away"}
    await api.call("PUT", "/users/me/status", token=w.bob.token, json=body)
    await w.post(w.bob, "still away")
    away = await api.call("GET", f"/users/{w.bob.id}/status", token=w.bob.token)
    assert away["status"] == "away" and away["manual"] is True


async def test_recipients_are_the_members_as_of_the_transaction(
    api: API, admin: User, node: Hubbub
) -> None:
    w = await make_world(api, admin)
    to_channel = Event("x", {}, Broadcast(channel_id=w.channel["id"]))
    members = {w.alice.id, w.bob.id, w.admin.id}
    recipients = await node.publisher.recipients(to_channel, None)
    assert sorted(recipients) == sorted(members) and len(recipients) == 3
    # A member added in the publishing transaction is a recipient (DESIGN §4 invariant 7).
    async with node.db.write() as conn:
        await insert_member(conn, w.channel["id"], w.carol.id)
        assert set(await node.publisher.recipients(to_channel, conn)) == {*members, w.carol.id}
    omit = Event("x", {}, Broadcast(channel_id=w.channel["id"], omit_users=frozenset([w.bob.id])))
    assert set(await node.publisher.recipients(omit, None)) == {*members, w.carol.id} - {w.bob.id}
    empty = await api.new_channel(w.alice.token, w.team["id"])
    await api.call("DELETE", f"/channels/{empty['id']}/members/{w.alice.id}", token=w.alice.token)
    nobody = Event("x", {}, Broadcast(channel_id=empty["id"]))
    assert await node.publisher.recipients(nobody, None) == []
    # A team's recipients are its current members.
    to_team = Event("x", {}, Broadcast(team_id=w.team["id"]))
    assert set(await node.publisher.recipients(to_team, None)) == {*members, w.carol.id}
    await api.call("DELETE", f"/teams/{w.team['id']}/members/{w.carol.id}", token=admin.token)
    assert set(await node.publisher.recipients(to_team, None)) == members


@pytest.mark.parametrize("pending", [False, True])
async def test_a_post_runs_five_statements(
    api: API, admin: User, node: Hubbub, db_kind: str, pending: bool
) -> None:
    """The cost of `POST /posts` is mostly its round trips to the database; this pins them:
    the checks (and the retry lookup), the channel's counters, the insert, the author's read
    mark, the recipients. PostgreSQL adds a savepoint around the insert of a post with a
    pending_post_id: another node may insert the same one concurrently. On SQLite the three
    writes run in one trip (`hubbub.store.pipeline`), past SQLAlchemy, so they are counted as
    SQLite itself runs them, with the transaction's BEGIN and COMMIT."""
    w = await make_world(api, admin)
    await w.post(w.alice, "warm up")
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]).split(None, 1)[0])

    traced: list[str] = []

    def record_sqlite(sql: str) -> None:
        # A statement's triggers are traced after it: "-- TRIGGER ..." and the statement again.
        if sql.startswith("--") or sql in traced[-1:]:
            return
        traced.append(sql)
        statements.append(sql.split(None, 1)[0])

    extra = {"pending_post_id": f"{w.alice.id}:1700000000001"} if pending else {}
    if db_kind == "sqlite":
        async with node.db.write() as conn:  # the connection every write shares
            raw: Any = (await conn.get_raw_connection()).driver_connection
        await raw._execute(raw._conn.set_trace_callback, record_sqlite)
        try:
            await w.post(w.alice, "counted", **extra)
        finally:
            await raw._execute(raw._conn.set_trace_callback, None)
        expected = ["BEGIN", "SELECT", "UPDATE", "INSERT", "UPDATE", "SELECT", "COMMIT"]
        assert statements == expected
        return
    event.listen(node.db.primary.sync_engine, "before_cursor_execute", record)
    try:
        await w.post(w.alice, "counted", **extra)
    finally:
        event.remove(node.db.primary.sync_engine, "before_cursor_execute", record)
    expected = ["SELECT", "UPDATE", "INSERT", "UPDATE", "SELECT"]
    if pending:
        expected[1:] = ["SAVEPOINT", "UPDATE", "INSERT", "UPDATE", "SELECT", "RELEASE"]
    assert statements == expected


@pytest.mark.parametrize("statement", [PENDING_POST, POST_CONTEXT], ids=["retry", "context"])
async def test_the_retry_lookup_uses_the_pending_index(
    node: Hubbub, db_kind: str, statement: Select[Any]
) -> None:
    """Every post a web client sends carries a pending_post_id, so looking it up must not scan
    the posts table (on PostgreSQL also with a prepared statement's generic plan)."""
    async with node.db.read() as conn:
        compiled = statement.compile(dialect=conn.dialect)
        values = {"p_channel_id": "c" * 26, "p_user_id": "u" * 26, "p_key": "k"}
        params = tuple(values[name] for name in compiled.positiontup or ())
        if db_kind == "sqlite":
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)).all()
        else:
            await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            plan = (await conn.exec_driver_sql(f"EXPLAIN {compiled}", params)).all()
    text = " ".join(str(step) for step in plan)
    assert "uq_posts_user_pending" in text and "SCAN posts" not in text, plan
