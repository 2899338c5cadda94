"""Channel history and threads: paging, before/after/since, cursors, ETags, thread pagination
with has_next, posts around the first unread one; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.support.api import API, User
from tests.support.posting import World, make_world


async def history(w: World, user: User, query: str = "", expect: int = 200) -> Any:
    return await w.api.call(
        "GET", f"/channels/{w.channel['id']}/posts{query}", token=user.token, expect=expect
    )


async def five_posts(w: World) -> list[dict[str, Any]]:
    return [await w.post(w.alice, f"m{i}") for i in range(5)]


async def test_pages_are_newest_first_with_cursors(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    p = await five_posts(w)
    ids = [x["id"] for x in p]
    everything = await history(w, w.bob)
    assert everything["order"] == ids[::-1]
    assert set(everything["posts"]) == set(ids)
    assert everything["next_post_id"] == "" and everything["prev_post_id"] == ""

    first = await history(w, w.bob, "?page=0&per_page=2")
    assert first["order"] == [ids[4], ids[3]]
    assert first["next_post_id"] == "" and first["prev_post_id"] == ids[2]
    second = await history(w, w.bob, "?page=1&per_page=2")
    assert second["order"] == [ids[2], ids[1]]
    assert second["next_post_id"] == ids[3] and second["prev_post_id"] == ids[0]
    last = await history(w, w.bob, "?page=2&per_page=2")
    assert last["order"] == [ids[0]] and last["prev_post_id"] == ""
    assert (await history(w, w.bob, "?page=9&per_page=2"))["order"] == []
    # Invalid paging falls back to the defaults instead of failing.
    assert (await history(w, w.bob, "?page=-1&per_page=abc"))["order"] == ids[::-1]


async def test_before_and_after(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    ids = [x["id"] for x in await five_posts(w)]
    before = await history(w, w.bob, f"?before={ids[3]}&per_page=2")
    assert before["order"] == [ids[2], ids[1]]
    assert before["next_post_id"] == ids[3] and before["prev_post_id"] == ids[0]
    older = await history(w, w.bob, f"?before={ids[3]}&per_page=2&page=1")
    assert older["order"] == [ids[0]]
    assert older["next_post_id"] == ids[1] and older["prev_post_id"] == ""

    after = await history(w, w.bob, f"?after={ids[1]}&per_page=2")
    assert after["order"] == [ids[3], ids[2]]
    assert after["prev_post_id"] == ids[1] and after["next_post_id"] == ids[4]
    newest = await history(w, w.bob, f"?after={ids[1]}&per_page=2&page=1")
    assert newest["order"] == [ids[4]] and newest["next_post_id"] == ""
    assert (await history(w, w.bob, f"?after={ids[4]}"))["order"] == []

    unknown = await history(w, w.bob, f"?before={'u' * 26}")
    assert unknown["order"] == [] and unknown["next_post_id"] == "u" * 26
    for bad in ("?before=nope", "?after=123", "?since=yesterday"):
        body = await history(w, w.bob, bad, expect=400)
        assert body["id"] == "api.context.invalid_param.app_error"


async def test_since_returns_changes_including_deletions(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    p = await five_posts(w)
    mark = p[2]["create_at"]
    await api.call(
        "PUT", f"/posts/{p[0]['id']}/patch", token=w.alice.token, json={"message": "edited"}
    )
    await api.call("DELETE", f"/posts/{p[1]['id']}", token=w.alice.token)
    resp = await api.raw(
        "GET", f"/channels/{w.channel['id']}/posts?since={mark}", token=w.bob.token
    )
    assert resp.status_code == 200 and "ETag" not in resp.headers
    body = resp.json()
    assert body["order"] == [p[4]["id"], p[3]["id"], p[1]["id"], p[0]["id"]]
    assert body["posts"][p[0]["id"]]["message"] == "edited"
    gone = body["posts"][p[1]["id"]]
    assert gone["delete_at"] > 0 and gone["message"] == ""
    assert body["next_post_id"] == "" and body["prev_post_id"] == ""
    # A regular listing leaves the deleted post out; system admins may ask for it.
    assert p[1]["id"] not in (await history(w, w.bob))["order"]
    await history(w, w.bob, "?include_deleted=true", expect=403)
    assert p[1]["id"] in (await history(w, w.admin, "?include_deleted=true"))["order"]


async def test_history_etag_and_304(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    await five_posts(w)
    path = f"/channels/{w.channel['id']}/posts"
    resp = await api.raw("GET", path, token=w.bob.token)
    tag = resp.headers["ETag"]
    same = await api.raw("GET", path, token=w.bob.token, headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.headers["ETag"] == tag
    await w.post(w.bob, "new")
    fresh = await api.raw("GET", path, token=w.bob.token, headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != tag
    assert fresh.json()["posts"][fresh.json()["order"][0]]["message"] == "new"


async def test_replies_bring_their_threads(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    r1 = await w.post(w.bob, "r1", root_id=root["id"])
    filler = [await w.post(w.alice, f"f{i}") for i in range(3)]
    r2 = await w.post(w.bob, "r2", root_id=root["id"])
    page = await history(w, w.bob, "?per_page=1")
    assert page["order"] == [r2["id"]]
    assert set(page["posts"]) == {r2["id"], root["id"], r1["id"]}
    assert page["posts"][r2["id"]]["reply_count"] == 2
    skip = await history(w, w.bob, "?per_page=1&skipFetchThreads=true")
    assert set(skip["posts"]) == {r2["id"], root["id"]}
    collapsed = await history(w, w.bob, "?collapsedThreads=true")
    assert collapsed["order"] == [f["id"] for f in filler[::-1]] + [root["id"]]


async def test_whole_thread_newest_first_with_etag(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    replies = [await w.post(w.bob, f"r{i}", root_id=root["id"]) for i in range(3)]
    await w.post(w.alice, "unrelated")
    path = f"/posts/{replies[1]['id']}/thread"
    resp = await api.raw("GET", path, token=w.bob.token)
    body = resp.json()
    assert body["order"] == [r["id"] for r in replies[::-1]] + [root["id"]]
    assert "has_next" not in body
    root_json = body["posts"][root["id"]]
    assert root_json["reply_count"] == 3 and [u["id"] for u in root_json["participants"]] == [
        w.bob.id
    ]
    tag = resp.headers["ETag"]
    same = await api.raw("GET", path, token=w.bob.token, headers={"If-None-Match": tag})
    assert same.status_code == 304
    await w.post(w.alice, "r3", root_id=root["id"])
    changed = await api.raw("GET", path, token=w.bob.token, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and len(changed.json()["order"]) == 5


async def test_thread_pagination_walks_every_post_once(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    root = await w.post(w.alice, "root")
    replies = [await w.post(w.bob, f"r{i}", root_id=root["id"]) for i in range(5)]
    thread_ids = [root["id"], *(r["id"] for r in replies)]

    seen: list[str] = []
    query = "?perPage=2&direction=down"
    for _ in range(10):
        page = await w.api.call("GET", f"/posts/{root['id']}/thread{query}", token=w.bob.token)
        assert page["order"][-1] == root["id"]  # the requested post is always there
        new = [i for i in page["order"] if i not in seen]
        seen.extend(sorted(new, key=thread_ids.index))
        if not page["has_next"]:
            break
        last = page["posts"][page["order"][0]]
        query = f"?perPage=2&direction=down&fromPost={last['id']}&fromCreateAt={last['create_at']}"
    assert seen == thread_ids
    assert page["has_next"] is False

    up = await w.api.call("GET", f"/posts/{root['id']}/thread?perPage=2", token=w.bob.token)
    assert up["has_next"] is True
    assert up["order"] == [replies[4]["id"], replies[3]["id"], root["id"]]

    for bad in (
        "?perPage=201",
        "?perPage=x",
        "?direction=sideways",
        f"?fromPost={root['id']}",
        "?fromCreateAt=soon",
        "?fromPost=bad&fromCreateAt=1",
    ):
        await w.api.call("GET", f"/posts/{root['id']}/thread{bad}", token=w.bob.token, expect=400)
    await w.api.call("GET", f"/posts/{'q' * 26}/thread", token=w.bob.token, expect=404)


async def test_posts_around_the_first_unread(api: API, admin: User) -> None:
    w = await make_world(api, admin)
    early = [await w.post(w.bob, f"e{i}") for i in range(2)]
    await w.post(w.alice, "mine")  # posting marks the channel read for alice
    late = [await w.post(w.bob, f"l{i}") for i in range(3)]
    path = f"/users/me/channels/{w.channel['id']}/posts/unread"
    around = await api.call("GET", path + "?limit_before=1&limit_after=2", token=w.alice.token)
    assert around["order"] == [late[1]["id"], late[0]["id"], around["order"][2]]
    assert around["posts"][around["order"][2]]["message"] == "mine"
    assert around["next_post_id"] == late[2]["id"]
    assert around["prev_post_id"] == early[1]["id"]
    # Nothing unread: the latest posts, with the channel ETag.
    read = await api.raw(
        "GET",
        f"/users/{w.bob.id}/channels/{w.channel['id']}/posts/unread?limit_before=2",
        token=w.bob.token,
    )
    assert read.status_code == 200 and "ETag" in read.headers
    assert read.json()["order"] == [late[2]["id"], late[1]["id"]]
    await api.call("GET", path + "?limit_after=0", token=w.alice.token, expect=400)
    await api.call(
        "GET",
        f"/users/{w.alice.id}/channels/{w.channel['id']}/posts/unread",
        token=w.bob.token,
        expect=403,
    )


def _expected_cursors(
    live: list[str], order: list[str], per_page: int, page: int, before: str, after: str
) -> tuple[str, str]:
    """Mattermost's cursors for a page, computed from every live post, oldest first."""
    next_id: str | None = None
    prev_id: str | None = None
    if after:
        if page == 0:
            prev_id = after
        if len(order) < per_page:
            next_id = ""
    elif before:
        if page == 0:
            next_id = before
        if len(order) < per_page:
            prev_id = ""

    def neighbour(post_id: str, step: int) -> str:
        at = live.index(post_id) + step
        return live[at] if 0 <= at < len(live) else ""

    if next_id is None:
        next_id = neighbour(order[0], 1) if order else ""
    if prev_id is None:
        prev_id = neighbour(order[-1], -1) if order else ""
    return next_id, prev_id


async def test_cursors_of_every_page_match_the_live_neighbours(api: API, admin: User) -> None:
    """The page's own read finds the post past its end (one row more) instead of a query per
    cursor: for every page size, page, anchor and both thread modes, the cursors are the live
    neighbours, deleted posts skipped and replies left out with collapsed threads."""
    w = await make_world(api, admin)
    made = [await w.post(w.bob, f"p{i}") for i in range(8)]
    made.append(await w.post(w.alice, "reply", root_id=made[2]["id"]))
    made += [await w.post(w.bob, f"q{i}") for i in range(3)]
    for gone in (made[4], made[9], made[-1]):  # a middle post, one after the reply, the newest
        await api.call("DELETE", f"/posts/{gone['id']}", token=w.bob.token)
    deleted = {made[4]["id"], made[9]["id"], made[-1]["id"]}
    for collapsed in (False, True):
        live = [
            p["id"] for p in made if p["id"] not in deleted and not (collapsed and p.get("root_id"))
        ]
        flags = "&collapsedThreads=true" if collapsed else ""
        anchors = [("", "")] + [(a, "") for a in live[::3]] + [("", a) for a in live[::3]]
        for per_page in (1, 2, 3, 20):
            for page in (0, 1, 2):
                for before, after in anchors:
                    query = f"?per_page={per_page}&page={page}{flags}"
                    query += f"&before={before}" if before else ""
                    query += f"&after={after}" if after else ""
                    got = await history(w, w.alice, query)
                    want = _expected_cursors(live, got["order"], per_page, page, before, after)
                    assert (got["next_post_id"], got["prev_post_id"]) == want, query

    # Around the first unread post: each side's read finds that side's cursor.
    path = f"/users/me/channels/{w.channel['id']}/posts/unread"
    view = {"channel_id": w.channel["id"]}
    for limit_before, limit_after in ((0, 1), (1, 1), (2, 2), (3, 9)):
        await api.call("POST", "/channels/members/me/view", token=w.alice.token, json=view)
        made += [await w.post(w.bob, f"late {limit_before} {i}") for i in range(3)]
        live = [p["id"] for p in made if p["id"] not in deleted]
        got = await api.call(
            "GET",
            path + f"?limit_before={limit_before}&limit_after={limit_after}",
            token=w.alice.token,
        )
        order = got["order"]
        assert made[-3]["id"] in order  # the first unread
        newer = live.index(order[0]) + 1
        older = live.index(order[-1]) - 1
        assert got["next_post_id"] == (live[newer] if newer < len(live) else ""), order
        assert got["prev_post_id"] == (live[older] if older >= 0 else ""), order
