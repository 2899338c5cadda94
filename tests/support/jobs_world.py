"""A channel with posts on both sides of the retention window, built through the API and aged
in the database, and the checks that retention removed exactly the old side."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from sqlalchemy import select, update

from hubbub.app import Hubbub
from hubbub.store.tables import file_infos, posts, thread_memberships
from tests.support.api import API, User
from tests.support.files import upload_one
from tests.support.wait import wait_until_async

HOUR_MS = 3_600_000
RETENTION_ENV = {
    "MM_DATARETENTIONSETTINGS_ENABLEMESSAGEDELETION": "true",
    "MM_DATARETENTIONSETTINGS_MESSAGERETENTIONHOURS": "1",
    "MM_DATARETENTIONSETTINGS_ENABLEFILEDELETION": "true",
    "MM_DATARETENTIONSETTINGS_FILERETENTIONHOURS": "1",
    "MM_DATARETENTIONSETTINGS_BATCHSIZE": "2",  # several batches per channel
    "MM_DATARETENTIONSETTINGS_TIMEBETWEENBATCHESMILLISECONDS": "0",
    "MM_JOBSETTINGS_HEARTBEATSECONDS": "0.2",
    "MM_JOBSETTINGS_STALESECONDS": "5",
}


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


@dataclass
class RetentionWorld:
    admin: User
    team: dict[str, Any]
    channel: dict[str, Any]
    old: list[str] = field(default_factory=list)  # post ids to be deleted
    kept: list[str] = field(default_factory=list)  # post ids to stay
    old_files: list[str] = field(default_factory=list)
    kept_files: list[str] = field(default_factory=list)
    old_paths: list[str] = field(default_factory=list)
    kept_paths: list[str] = field(default_factory=list)
    old_reactions: int = 0
    root: str = ""  # a kept root that loses an old reply
    root_last_reply: int = 0


async def post(api: API, token: str, channel_id: str, message: str, **kw: Any) -> Any:
    return await api.call(
        "POST",
        "/posts",
        token,
        json={"channel_id": channel_id, "message": message, **kw},
        expect=201,
    )


async def react(api: API, user: User, post_id: str, emoji: str) -> None:
    await api.call(
        "POST",
        "/reactions",
        user.token,
        json={"user_id": user.id, "post_id": post_id, "emoji_name": emoji},
        expect=201,
    )


async def age(node: Hubbub, post_ids: list[str], hours_ago: float) -> None:
    when = int(time.time() * 1000 - hours_ago * HOUR_MS)
    async with node.db.write() as conn:
        await conn.execute(update(posts).where(posts.c.id.in_(post_ids)).values(create_at=when))


async def age_files(node: Hubbub, file_ids: list[str], hours_ago: float) -> None:
    when = int(time.time() * 1000 - hours_ago * HOUR_MS)
    async with node.db.write() as conn:
        await conn.execute(
            update(file_infos).where(file_infos.c.id.in_(file_ids)).values(create_at=when)
        )


async def paths_of(node: Hubbub, file_ids: list[str]) -> list[str]:
    async with node.db.read() as conn:
        rows = (
            await conn.execute(
                select(
                    file_infos.c.path, file_infos.c.thumbnail_path, file_infos.c.preview_path
                ).where(file_infos.c.id.in_(file_ids))
            )
        ).all()
    return [p for row in rows for p in row if p]


async def build(api: API, node: Hubbub, admin: User) -> RetentionWorld:
    team = await api.new_team(admin.token)
    channel = await api.new_channel(admin.token, team["id"])
    w = RetentionWorld(admin, team, channel)
    cid = channel["id"]

    # Old: a root with a file and two reactions, an old reply with a reaction, and more roots
    # than one batch holds.
    old_file = await upload_one(api, admin.token, cid, "old.png", png())
    old_root = await post(api, admin.token, cid, "ancientword root", file_ids=[old_file["id"]])
    await react(api, admin, old_root["id"], "smile")
    await react(api, admin, old_root["id"], "tada")
    old_reply = await post(api, admin.token, cid, "ancientword reply", root_id=old_root["id"])
    await react(api, admin, old_reply["id"], "smile")
    w.old_reactions = 3
    w.old += [old_root["id"], old_reply["id"]]
    for i in range(5):
        w.old.append((await post(api, admin.token, cid, f"ancientword filler {i}"))["id"])
    w.old_files.append(old_file["id"])

    # Kept: a reply to the old root (orphaned, as in Mattermost), a root just inside the
    # window with a file, and a new root whose one old reply goes while its new reply stays.
    orphan = await post(api, admin.token, cid, "freshword orphan", root_id=old_root["id"])
    kept_file = await upload_one(api, admin.token, cid, "kept.png", png())
    inside = await post(api, admin.token, cid, "freshword inside", file_ids=[kept_file["id"]])
    await react(api, admin, inside["id"], "smile")
    root = await post(api, admin.token, cid, "freshword root")
    early_reply = await post(api, admin.token, cid, "ancientword early", root_id=root["id"])
    late_reply = await post(api, admin.token, cid, "freshword late", root_id=root["id"])
    w.kept += [orphan["id"], inside["id"], root["id"], late_reply["id"]]
    w.old.append(early_reply["id"])
    w.kept_files.append(kept_file["id"])
    w.root, w.root_last_reply = root["id"], late_reply["create_at"]

    # A file on a kept post, but older than the file window: file retention removes it.
    aged_file = await upload_one(api, admin.token, cid, "aged.txt", b"aged file")
    with_aged = await post(api, admin.token, cid, "freshword aged file", file_ids=[aged_file["id"]])
    w.kept.append(with_aged["id"])
    w.old_files.append(aged_file["id"])

    w.old_paths = await paths_of(node, w.old_files)
    w.kept_paths = await paths_of(node, w.kept_files)
    await age(node, [i for i in w.old if i != early_reply["id"]], 2)
    await age(node, [early_reply["id"]], 1.5)
    await age(node, [inside["id"]], 0.9)  # 54 minutes: inside the 1 hour window
    await age_files(node, [old_file["id"]], 2)
    await age_files(node, [aged_file["id"]], 1.2)
    return w


async def run_job(
    api: API, token: str, job_type: str, data: dict[str, str] | None = None, timeout: float = 30
) -> dict[str, Any]:
    job = await api.call(
        "POST", "/jobs", token, json={"type": job_type, "data": data or {}}, expect=201
    )
    last: dict[str, Any] = {}

    async def finished() -> dict[str, Any] | None:
        last.update(await api.call("GET", f"/jobs/{job['id']}", token))
        return dict(last) if last["status"] in {"success", "error", "canceled"} else None

    return await wait_until_async(
        finished, timeout, f"job {job['id']} to finish (last seen: {last})", interval=0.05
    )


async def search(api: API, token: str, team_id: str, terms: str) -> list[str]:
    found = await api.call(
        "POST",
        f"/teams/{team_id}/posts/search",
        token,
        json={"terms": terms, "is_or_search": False},
    )
    return sorted(found["order"])


async def check_after(
    api: API, node: Hubbub, w: RetentionWorld, job: dict[str, Any], exists: Any
) -> None:
    token = w.admin.token
    assert job["status"] == "success", job
    # Every post older than the window: the files of posts and the files older than theirs.
    assert job["data"]["deleted_posts"] == str(len(w.old))
    assert job["data"]["deleted_reactions"] == str(w.old_reactions)
    assert job["data"]["deleted_files"] == str(len(w.old_files))
    for post_id in w.old:
        await api.call("GET", f"/posts/{post_id}", token, expect=404)
    listing = await api.call("GET", f"/channels/{w.channel['id']}/posts", token)
    assert set(w.kept) <= set(listing["order"]) and not set(w.old) & set(listing["order"])
    assert not set(w.old) & set(listing["posts"])
    thread = await api.call("GET", f"/posts/{w.root}/thread", token)
    assert sorted(thread["order"]) == sorted([w.root, w.kept[-2]])
    root = await api.call("GET", f"/posts/{w.root}", token)
    assert root["reply_count"] == 1 and root["last_reply_at"] == w.root_last_reply
    # Thread data: nobody follows a deleted root any more; the kept thread is listed with its
    # one remaining reply, as a client with collapsed threads expects.
    async with node.db.read() as conn:
        followed = set(
            (
                await conn.execute(
                    select(thread_memberships.c.post_id).where(
                        thread_memberships.c.post_id.in_(w.old + w.kept)
                    )
                )
            ).scalars()
        )
    assert w.root in followed and not followed & set(w.old), followed
    threads = await api.call("GET", f"/users/{w.admin.id}/teams/{w.team['id']}/threads", token)
    listed = {t["id"]: t for t in threads["threads"]}
    assert w.root in listed and not set(listed) & set(w.old), sorted(listed)
    assert listed[w.root]["reply_count"] == 1
    inside = await api.call("GET", f"/posts/{w.kept[1]}", token)
    assert [r["emoji_name"] for r in inside["metadata"]["reactions"]] == ["smile"]
    assert [f["id"] for f in inside["metadata"]["files"]] == w.kept_files
    assert await search(api, token, w.team["id"], "ancientword") == []
    assert len(await search(api, token, w.team["id"], "freshword")) == 5
    for file_id in w.old_files:
        await api.call("GET", f"/files/{file_id}/info", token, expect=404)
    for file_id in w.kept_files:
        await api.call("GET", f"/files/{file_id}/info", token)
    assert w.old_paths and w.kept_paths
    for path in w.old_paths:
        assert not await exists(path), path
    for path in w.kept_paths:
        assert await exists(path), path
