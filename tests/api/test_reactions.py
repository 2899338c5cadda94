"""Reactions over the API: save (idempotent), remove, list, bulk, has_reactions and metadata,
events, permissions and bad input; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from hubbub.app import Hubbub
from tests.support.api import API, User
from tests.support.posting import World, make_world


async def react(
    w: World, user: User, post_id: str, emoji: str = "+1", expect: int = 201, **extra: Any
) -> Any:
    body = {"user_id": user.id, "post_id": post_id, "emoji_name": emoji, **extra}
    return await w.api.call("POST", "/reactions", token=user.token, json=body, expect=expect)


async def unreact(
    w: World, user: User, who: str, post_id: str, emoji: str, expect: int = 200
) -> Any:
    return await w.api.call(
        "DELETE",
        f"/users/{who}/posts/{post_id}/reactions/{emoji}",
        token=user.token,
        expect=expect,
    )


async def test_save_is_idempotent_and_marks_the_post(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    post = await w.post(w.alice, "react to me")
    first = await react(w, w.bob, post["id"])
    assert first["user_id"] == w.bob.id and first["post_id"] == post["id"]
    assert first["emoji_name"] == "+1" and first["channel_id"] == w.channel["id"]
    assert first["create_at"] > 0 and first["delete_at"] == 0
    again = await react(w, w.bob, post["id"])
    assert again == first
    [event] = node.events.named("reaction_added")
    assert json.loads(event.data["reaction"]) == first
    assert event.broadcast.channel_id == w.channel["id"]

    got = await api.call("GET", f"/posts/{post['id']}", token=w.alice.token)
    assert got["has_reactions"] is True and got["update_at"] > post["update_at"]
    assert got["metadata"]["reactions"] == [first]
    await react(w, w.alice, post["id"], "smile")
    listed = await api.call("GET", f"/posts/{post['id']}/reactions", token=w.alice.token)
    assert [(r["user_id"], r["emoji_name"]) for r in listed] == [
        (w.bob.id, "+1"),
        (w.alice.id, "smile"),
    ]
    page = await api.call("GET", f"/channels/{w.channel['id']}/posts", token=w.alice.token)
    assert len(page["posts"][post["id"]]["metadata"]["reactions"]) == 2


async def test_remove_keeps_has_reactions_right(api: API, admin: User, node: Hubbub) -> None:
    w = await make_world(api, admin)
    post = await w.post(w.alice, "p")
    await react(w, w.bob, post["id"], "+1")
    await react(w, w.alice, post["id"], "tada")
    assert await unreact(w, w.bob, "me", post["id"], "+1") == {"status": "OK"}
    got = await api.call("GET", f"/posts/{post['id']}", token=w.alice.token)
    assert got["has_reactions"] is True
    assert [r["emoji_name"] for r in got["metadata"]["reactions"]] == ["tada"]
    before = got["update_at"]
    await unreact(w, w.alice, w.alice.id, post["id"], "tada")
    got = await api.call("GET", f"/posts/{post['id']}", token=w.alice.token)
    assert "has_reactions" not in got and got["update_at"] > before
    assert await api.call("GET", f"/posts/{post['id']}/reactions", token=w.bob.token) == []
    removed = node.events.named("reaction_removed")
    assert len(removed) == 2
    assert json.loads(removed[0].data["reaction"])["emoji_name"] == "+1"
    # Removing what is not there is fine and sends nothing; re-adding revives it.
    await unreact(w, w.alice, w.alice.id, post["id"], "tada")
    assert len(node.events.named("reaction_removed")) == 2
    await react(w, w.alice, post["id"], "tada")
    got = await api.call("GET", f"/posts/{post['id']}", token=w.alice.token)
    assert got["has_reactions"] is True


async def test_bulk_reactions(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    one = await w.post(w.alice, "one")
    two = await w.post(w.alice, "two")
    await react(w, w.bob, one["id"], "a")
    await react(w, w.alice, one["id"], "b")
    found = await api.call(
        "POST", "/posts/ids/reactions", token=w.bob.token, json=[one["id"], two["id"]]
    )
    assert set(found) == {one["id"], two["id"]}
    assert [r["emoji_name"] for r in found[one["id"]]] == ["a", "b"]
    assert found[two["id"]] == []
    await api.call("POST", "/posts/ids/reactions", token=w.bob.token, json=["bad"], expect=400)
    await api.call("POST", "/posts/ids/reactions", token=w.bob.token, json={}, expect=400)


async def test_permissions(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    private = await w.private_channel()
    secret = await w.post(w.alice, "secret", channel_id=private["id"])
    await react(w, w.carol, secret["id"], expect=403)
    await api.call("GET", f"/posts/{secret['id']}/reactions", token=w.carol.token, expect=403)
    await api.call(
        "POST", "/posts/ids/reactions", token=w.carol.token, json=[secret["id"]], expect=403
    )
    await react(w, w.bob, secret["id"])
    await unreact(w, w.carol, w.carol.id, secret["id"], "+1", expect=403)
    # Nobody reacts as someone else; only a system admin removes another user's reaction.
    body = await react(w, w.alice, secret["id"], user_id=w.bob.id, expect=403)
    assert body["id"] == "api.reaction.save_reaction.user_id.app_error"
    await unreact(w, w.alice, w.bob.id, secret["id"], "+1", expect=403)
    await unreact(w, w.admin, w.bob.id, secret["id"], "+1")
    assert await api.call("GET", f"/posts/{secret['id']}/reactions", token=w.bob.token) == []


async def test_bad_input(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    post = await w.post(w.alice, "p")
    for emoji in ("", "no spaces", "x" * 65, "semi;colon"):
        await react(w, w.bob, post["id"], emoji, expect=400)
    body = await react(w, w.bob, post["id"], "bad!", expect=400)
    assert body["id"] == "model.reaction.is_valid.emoji_name.app_error"
    await react(w, w.bob, "short", expect=400)
    await react(w, w.bob, "n" * 26, expect=404)
    await api.call(
        "POST", "/reactions", token=w.bob.token, json={"post_id": post["id"]}, expect=400
    )
    await api.call("POST", "/reactions", token=w.bob.token, json=["x"], expect=400)
    await unreact(w, w.bob, "me", post["id"], "bad!", expect=400)
    await unreact(w, w.bob, "me", "short", "smile", expect=400)
    await unreact(w, w.bob, "nobody", post["id"], "smile", expect=400)
    await api.call("GET", f"/posts/{'n' * 26}/reactions", token=w.bob.token, expect=404)
    await api.call("POST", "/reactions", json={}, expect=401)
    await api.call("DELETE", f"/posts/{post['id']}", token=w.alice.token)
    await react(w, w.bob, post["id"], expect=404)
