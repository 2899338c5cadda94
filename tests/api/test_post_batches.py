"""Group commit of posts on SQLite: the posts that arrive while earlier ones are being written
share one write transaction (`PostsService._create_many`), and each keeps what it had alone: its own
checks and answer (a refused post does not fail the others), its own `posted` event with a
channel sequence number in commit order, idempotency by pending_post_id, and, when a post fails
after it has written, the others are still created, each in a transaction of its own.

The service is called directly with `asyncio.gather`: `create` submits to the batch without
awaiting anything first, so every post of one gather lands in the same batch. On PostgreSQL posts
are not batched (each has its own transaction, concurrently); the same outcomes must hold there.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hubbub.app import Hubbub
from hubbub.errors import AppError
from hubbub.services.channel_seq import EXTRA_KEY
from hubbub.services.posts import CreatedPost, NewPost
from hubbub.services.session import Session
from tests.support.api import API, User
from tests.support.posting import World, count_posts, make_world
from tests.support.recording import RecordingPublisher


async def session_of(node: Hubbub, user: User) -> Session:
    session = await node.auth.resolve(user.token)
    assert session is not None
    return session


async def delivered(node: Hubbub, user: User) -> list[dict[str, Any]]:
    """The posts of the `posted` events in `user`'s event log: what their websockets get."""
    found = await node.backends.eventlog.read(user.id, 0)
    events = [json.loads(entry.payload) for entry in found.entries]
    return [json.loads(e["data"]["post"]) for e in events if e["event"] == "posted"]


def posted(node: Hubbub, channel_id: str) -> list[tuple[int, dict[str, Any]]]:
    """(channel sequence number, post) of every `posted` event to `channel_id`, as published."""
    assert isinstance(node.events, RecordingPublisher)
    return [
        (int(e.extra[EXTRA_KEY]), json.loads(e.data["post"]))
        for e in node.events.named("posted")
        if e.broadcast.channel_id == channel_id
    ]


async def test_posts_of_one_batch_share_a_transaction_and_keep_their_own_answers(
    api: API, admin: User, node: Hubbub, db_kind: str
) -> None:
    w: World = await make_world(api, admin)
    private = await w.private_channel()
    await w.post(w.alice, "warm up")
    before = len(posted(node, w.channel["id"]))
    seen = len(await delivered(node, w.admin))
    alice, bob, carol = [await session_of(node, u) for u in (w.alice, w.bob, w.carol)]
    batches = node.posts._batcher.batches
    jobs = []
    for i in range(6):
        jobs.append(node.posts.create(alice, NewPost(w.channel["id"], f"alice {i}")))
        jobs.append(node.posts.create(bob, NewPost(w.channel["id"], f"bob {i}")))
    # Refused by its checks, in the middle of the batch: carol is not in the private channel.
    jobs.insert(5, node.posts.create(carol, NewPost(private["id"], "refused")))
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)

    assert node.posts._batcher.batches == batches + (1 if db_kind == "sqlite" else 0)
    refused = outcomes.pop(5)
    assert isinstance(refused, AppError) and refused.status_code == 403, refused
    created = [o for o in outcomes if isinstance(o, CreatedPost)]
    assert len(created) == 12, outcomes
    assert await count_posts(node, channel_id=w.channel["id"]) == 13
    assert await count_posts(node, channel_id=private["id"]) == 0
    # One event per post, sequence numbers consecutive and in commit order (create_at); on
    # SQLite the batch commits the posts in the order submitted and delivers them so.
    in_commit_order = sorted(created, key=lambda c: c.post["create_at"])
    assert len({c.post["create_at"] for c in created}) == 12
    if db_kind == "sqlite":
        assert in_commit_order == created
    events = sorted(posted(node, w.channel["id"])[before:], key=lambda e: e[0])
    assert [post["id"] for _, post in events] == [c.post["id"] for c in in_commit_order]
    seqs = [seq for seq, _ in events]
    assert seqs == list(range(seqs[0], seqs[0] + 12))
    got = [p["id"] for p in (await delivered(node, w.admin))[seen:]]
    if db_kind == "sqlite":  # after-commit work runs under the writer lock, in commit order
        assert got == [c.post["id"] for c in in_commit_order]
    else:  # concurrent transactions: each post once (their order is the realtime layer's)
        assert sorted(got) == sorted(c.post["id"] for c in created)
    # Each author's membership is marked read up to its own last post.
    authors = [c.post["user_id"] for c in in_commit_order]
    after_alice = len(authors) - 1 - max(i for i, a in enumerate(authors) if a == w.alice.id)
    unread = await api.call(
        "GET", f"/users/{w.alice.id}/channels/{w.channel['id']}/unread", w.alice.token
    )
    assert unread["msg_count"] == after_alice


async def test_a_retry_in_the_same_batch_gets_the_first_post(
    api: API, admin: User, node: Hubbub, db_kind: str
) -> None:
    w = await make_world(api, admin)
    alice = await session_of(node, w.alice)
    new = NewPost(w.channel["id"], "once", pending_post_id=f"{w.alice.id}:1700000000123")
    batches = node.posts._batcher.batches
    first, retry = await asyncio.gather(
        node.posts.create(alice, new), node.posts.create(alice, new)
    )
    assert node.posts._batcher.batches == batches + (1 if db_kind == "sqlite" else 0)
    assert first.post["id"] == retry.post["id"]
    assert retry.post["pending_post_id"] == new.pending_post_id
    assert await count_posts(node, channel_id=w.channel["id"], message="once") == 1
    assert len([p for _, p in posted(node, w.channel["id"]) if p["message"] == "once"]) == 1


async def test_a_post_failing_after_it_wrote_does_not_lose_the_others(
    api: API, admin: User, node: Hubbub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply whose thread bookkeeping fails (after the reply was inserted): the batch's
    transaction is rolled back and every post is created again alone; only the failing one
    fails, and nothing of it is left, not even its event."""
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    alice, bob = await session_of(node, w.alice), await session_of(node, w.bob)
    real = node.posts.threads.on_reply

    async def failing(conn: Any, row: Any, *args: Any) -> None:
        if row["message"] == "boom":
            raise RuntimeError("thread bookkeeping failed")
        await real(conn, row, *args)

    monkeypatch.setattr(node.posts.threads, "on_reply", failing)
    seen = len(await delivered(node, w.admin))
    outcomes = await asyncio.gather(
        node.posts.create(alice, NewPost(w.channel["id"], "first")),
        node.posts.create(bob, NewPost(w.channel["id"], "boom", root_id=root["id"])),
        node.posts.create(bob, NewPost(w.channel["id"], "reply", root_id=root["id"])),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], RuntimeError), outcomes
    first, reply = outcomes[0], outcomes[2]
    assert isinstance(first, CreatedPost) and isinstance(reply, CreatedPost), outcomes
    assert await count_posts(node, message="boom") == 0
    assert await count_posts(node, message="first") == 1
    assert await count_posts(node, message="reply") == 1
    # The events of the rolled-back batch were never delivered; those of the retries were.
    messages = [p["message"] for p in (await delivered(node, w.admin))[seen:]]
    assert messages == ["first", "reply"]
    thread = await api.call("GET", f"/posts/{root['id']}", w.alice.token)
    assert thread["reply_count"] == 1
