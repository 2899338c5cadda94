"""Collapsed reply threads over the API, on SQLite and PostgreSQL: who follows a thread (root
author, repliers, mentioned users; an unfollow is kept until a mention), unread replies and
mentions, the lists with their filters and totals, reading and marking unread, the events, and
Mattermost's errors for other users' data and wrong ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from hubbub.app import Hubbub
from tests.support.api import API, User

UNKNOWN = "x" * 26


@dataclass
class Setup:
    admin: User
    alice: User  # writes the root posts
    bob: User  # replies
    carol: User  # is mentioned
    dave: User  # in the team, not in the channel
    team: dict[str, Any]
    channel: dict[str, Any]


@pytest.fixture
async def s(api: API, admin: User) -> Setup:
    alice, bob, carol, dave = [await api.new_user(admin.token) for _ in range(4)]
    team = await api.new_team(admin.token)
    for member in (alice, bob, carol, dave):
        await api.add_to_team(admin.token, team["id"], member.id)
    channel = await api.new_channel(admin.token, team["id"])
    for member in (alice, bob, carol):
        await api.add_to_channel(admin.token, channel["id"], member.id)
    return Setup(admin, alice, bob, carol, dave, team, channel)


async def _post(api: API, user: User, channel_id: str, message: str, root_id: str = "") -> Any:
    return await api.call(
        "POST",
        "/posts",
        token=user.token,
        json={"channel_id": channel_id, "message": message, "root_id": root_id},
        expect=201,
    )


def _threads_url(user: User, s: Setup, rest: str = "") -> str:
    return f"/users/{user.id}/teams/{s.team['id']}/threads{rest}"


async def test_repliers_root_author_and_mentioned_follow(api: API, s: Setup, node: Hubbub) -> None:
    root = await _post(api, s.alice, s.channel["id"], "a question")
    reply = await _post(api, s.bob, s.channel["id"], f"ask @{s.carol.username}", root["id"])

    # Alice (root author) follows, with the reply unread; Bob replied, so he has read it;
    # Carol was mentioned: one unread mention.
    alice = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    assert alice["total"] == 1
    assert alice["total_unread_threads"] == 1
    assert alice["total_unread_mentions"] == 0
    assert alice["total_unread_urgent_mentions"] == 0
    [thread] = alice["threads"]
    assert thread["id"] == root["id"]
    assert thread["reply_count"] == 1
    assert thread["last_reply_at"] == reply["create_at"]
    assert thread["unread_replies"] == 1
    assert thread["unread_mentions"] == 0
    assert thread["last_viewed_at"] == 0
    assert thread["post"]["id"] == root["id"]
    assert thread["post"]["message"] == "a question"
    assert thread["is_urgent"] is False
    assert thread["delete_at"] == 0
    # Not extended: participants are bare ids.
    assert [p["id"] for p in thread["participants"]] == [s.bob.id]
    assert thread["participants"][0]["username"] == ""

    bob = await api.call("GET", _threads_url(s.bob, s) + "?extended=true", token=s.bob.token)
    [bob_thread] = bob["threads"]
    assert bob["total_unread_threads"] == 0
    assert bob_thread["unread_replies"] == 0
    assert bob_thread["participants"][0]["username"] == s.bob.username

    carol = await api.call("GET", _threads_url(s.carol, s), token=s.carol.token)
    assert carol["total_unread_mentions"] == 1
    assert carol["threads"][0]["unread_mentions"] == 1

    # thread_updated reached each follower, with the team in the broadcast.
    updated = {e.broadcast.user_id: e for e in node.events.named("thread_updated")}
    assert set(updated) == {s.alice.id, s.bob.id, s.carol.id}
    for event in updated.values():
        assert event.broadcast.team_id == s.team["id"]
        payload = json.loads(event.data["thread"])
        assert payload["id"] == root["id"]
        assert payload["reply_count"] == 1
    carol_event = updated[s.carol.id]
    assert json.loads(carol_event.data["thread"])["unread_mentions"] == 1
    assert carol_event.data["previous_unread_mentions"] == 0
    assert json.loads(updated[s.bob.id].data["thread"])["unread_replies"] == 0


async def test_a_root_without_replies_is_no_thread(api: API, s: Setup) -> None:
    await _post(api, s.alice, s.channel["id"], "nobody answers")
    body = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    assert body == {
        "total": 0,
        "total_unread_threads": 0,
        "total_unread_mentions": 0,
        "total_unread_urgent_mentions": 0,
        "threads": [],
    }


async def test_read_unread_and_read_all(api: API, s: Setup, node: Hubbub) -> None:
    root = await _post(api, s.alice, s.channel["id"], "root")
    first = await _post(api, s.bob, s.channel["id"], f"one @{s.alice.username}", root["id"])
    second = await _post(api, s.bob, s.channel["id"], "two", root["id"])
    url = _threads_url(s.alice, s, f"/{root['id']}")

    one = await api.call("GET", url, token=s.alice.token)
    assert (one["unread_replies"], one["unread_mentions"]) == (2, 1)

    read = await api.call("PUT", url + f"/read/{second['create_at']}", token=s.alice.token)
    assert (read["unread_replies"], read["unread_mentions"]) == (0, 0)
    assert read["last_viewed_at"] == second["create_at"]
    [changed] = node.events.named("thread_read_changed")
    assert changed.broadcast.user_id == s.alice.id
    assert changed.broadcast.team_id == s.team["id"]
    assert changed.data == {
        "thread_id": root["id"],
        "timestamp": second["create_at"],
        "unread_mentions": 0,
        "unread_replies": 0,
        "previous_unread_mentions": 1,
        "previous_unread_replies": 2,
        "channel_id": s.channel["id"],
    }

    # Unread from the first reply on: both replies unread again, the mention counted again.
    unread = await api.call("POST", url + f"/set_unread/{first['id']}", token=s.alice.token)
    assert (unread["unread_replies"], unread["unread_mentions"]) == (2, 1)
    assert unread["last_viewed_at"] == first["create_at"] - 1
    totals = await api.call(
        "GET", _threads_url(s.alice, s) + "?totalsOnly=true", token=s.alice.token
    )
    assert (totals["total_unread_threads"], totals["total_unread_mentions"]) == (1, 1)
    assert totals["threads"] == []

    # A post from another thread is a 400.
    other_root = await _post(api, s.alice, s.channel["id"], "other")
    wrong = await api.call(
        "POST", url + f"/set_unread/{other_root['id']}", token=s.alice.token, expect=400
    )
    assert wrong["id"] == "app.user.update_thread_read_for_user_by_post.app_error"

    await api.call("PUT", _threads_url(s.alice, s, "/read"), token=s.alice.token)
    after = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    assert (after["total_unread_threads"], after["total_unread_mentions"]) == (0, 0)
    all_read = node.events.named("thread_read_changed")[-1]
    assert all_read.data == {}
    assert all_read.broadcast.user_id == s.alice.id


async def test_unfollow_sticks_until_mentioned(api: API, s: Setup, node: Hubbub) -> None:
    root = await _post(api, s.alice, s.channel["id"], "root")
    await _post(api, s.bob, s.channel["id"], "reply", root["id"])
    url = _threads_url(s.alice, s, f"/{root['id']}/following")
    await api.call("DELETE", url, token=s.alice.token)
    [unfollowed] = node.events.named("thread_follow_changed")
    assert unfollowed.data == {"thread_id": root["id"], "state": False, "reply_count": 1}
    assert unfollowed.broadcast.user_id == s.alice.id

    await _post(api, s.bob, s.channel["id"], "another reply", root["id"])
    gone = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    assert gone["total"] == 0
    missing = await api.call(
        "GET", _threads_url(s.alice, s, f"/{root['id']}"), token=s.alice.token, expect=404
    )
    assert missing["id"] == "app.user.get_threads_for_user.not_found"

    # A mention brings her back.
    await _post(api, s.bob, s.channel["id"], f"@{s.alice.username} look", root["id"])
    back = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    assert back["total"] == 1
    assert back["threads"][0]["unread_mentions"] == 1

    # Following explicitly marks the thread read; Dave never had a membership.
    await api.call("PUT", url, token=s.alice.token)
    followed = await api.call(
        "GET", _threads_url(s.alice, s, f"/{root['id']}"), token=s.alice.token
    )
    assert followed["unread_replies"] == 0


async def test_list_filters_and_paging(api: API, s: Setup) -> None:
    roots = []
    for n in range(3):
        root = await _post(api, s.alice, s.channel["id"], f"root {n}")
        await _post(api, s.bob, s.channel["id"], f"reply {n}", root["id"])
        roots.append(root)
    newest_first = [r["id"] for r in reversed(roots)]
    base = _threads_url(s.alice, s)
    everything = await api.call("GET", base, token=s.alice.token)
    assert [t["id"] for t in everything["threads"]] == newest_first
    page = await api.call("GET", base + "?per_page=2", token=s.alice.token)
    assert [t["id"] for t in page["threads"]] == newest_first[:2]
    assert page["total"] == 3
    before = await api.call("GET", base + f"?before={newest_first[0]}", token=s.alice.token)
    assert [t["id"] for t in before["threads"]] == newest_first[1:]
    after = await api.call("GET", base + f"?after={newest_first[2]}", token=s.alice.token)
    assert [t["id"] for t in after["threads"]] == list(reversed(newest_first[:2]))
    # Read the middle one: `unread` leaves it out and counts the rest.
    middle = everything["threads"][1]
    await api.call(
        "PUT",
        _threads_url(s.alice, s, f"/{middle['id']}/read/{middle['last_reply_at']}"),
        token=s.alice.token,
    )
    unread = await api.call("GET", base + "?unread=true", token=s.alice.token)
    assert [t["id"] for t in unread["threads"]] == [newest_first[0], newest_first[2]]
    assert unread["total"] == 2
    only = await api.call("GET", base + "?threadsOnly=true", token=s.alice.token)
    assert only["total"] == 0 and len(only["threads"]) == 3
    since = await api.call(
        "GET", base + f"?since={everything['threads'][0]['last_reply_at']}", token=s.alice.token
    )
    assert newest_first[0] in [t["id"] for t in since["threads"]]
    # Mobile sends empty cursors and `pageSize`.
    mobile = await api.call(
        "GET",
        base + "?extended=true&before=&after=&deleted=false&unread=false&since=0"
        "&totalsOnly=false&pageSize=1",
        token=s.alice.token,
    )
    assert len(mobile["threads"]) == 1


async def test_deleted_reply_and_root(api: API, s: Setup, node: Hubbub) -> None:
    root = await _post(api, s.alice, s.channel["id"], "root")
    one = await _post(api, s.bob, s.channel["id"], "one", root["id"])
    await _post(api, s.bob, s.channel["id"], "two", root["id"])
    await api.call("DELETE", f"/posts/{one['id']}", token=s.bob.token)
    thread = await api.call("GET", _threads_url(s.alice, s, f"/{root['id']}"), token=s.alice.token)
    assert thread["reply_count"] == 1
    assert thread["unread_replies"] == 1
    last = node.events.named("thread_updated")[-1]
    assert json.loads(last.data["thread"])["reply_count"] == 1

    await api.call("DELETE", f"/posts/{root['id']}", token=s.alice.token)
    listed = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    assert listed["total"] == 0
    with_deleted = await api.call(
        "GET", _threads_url(s.alice, s) + "?deleted=true", token=s.alice.token
    )
    # With `deleted`, the deleted thread is listed, marked deleted (Mattermost's ThreadDeleteAt).
    [deleted] = with_deleted["threads"]
    assert deleted["id"] == root["id"] and deleted["delete_at"] > 0


async def test_direct_message_threads_show_in_every_team(api: API, s: Setup) -> None:
    dm = await api.call(
        "POST", "/channels/direct", token=s.alice.token, json=[s.alice.id, s.bob.id], expect=201
    )
    root = await _post(api, s.alice, dm["id"], "in private")
    await _post(api, s.bob, dm["id"], "answer", root["id"])
    listed = await api.call("GET", _threads_url(s.alice, s), token=s.alice.token)
    [thread] = listed["threads"]
    # In a DM every reply of the other person is a mention.
    assert thread["unread_mentions"] == 1
    assert listed["total_unread_mentions"] == 1


async def test_errors_and_permissions(api: API, s: Setup) -> None:
    root = await _post(api, s.alice, s.channel["id"], "root")
    await _post(api, s.bob, s.channel["id"], "reply", root["id"])
    other = await api.call("GET", _threads_url(s.alice, s), token=s.bob.token, expect=403)
    assert other["id"] == "api.context.permissions.app_error"
    # An admin may look (edit_other_users).
    assert (await api.call("GET", _threads_url(s.alice, s), token=s.admin.token))["total"] == 1
    # Dave is not in this private channel: he can neither follow nor read its threads.
    private = await api.new_channel(s.admin.token, s.team["id"], "P")
    await api.add_to_channel(s.admin.token, private["id"], s.alice.id)
    secret = await _post(api, s.alice, private["id"], "secret")
    denied = await api.call(
        "PUT",
        _threads_url(s.dave, s, f"/{secret['id']}/following"),
        token=s.dave.token,
        expect=403,
    )
    assert denied["id"] == "api.context.permissions.app_error"
    hidden = await api.call(
        "GET", _threads_url(s.dave, s, f"/{secret['id']}"), token=s.dave.token, expect=403
    )
    assert hidden["id"] == "api.context.permissions.app_error"
    unknown = await api.call(
        "GET", _threads_url(s.alice, s, f"/{UNKNOWN}"), token=s.alice.token, expect=404
    )
    assert unknown["id"] == "app.post.get.app_error"
    never = await api.call(
        "GET", _threads_url(s.carol, s, f"/{root['id']}"), token=s.carol.token, expect=404
    )
    assert never["id"] == "app.user.get_thread_membership_for_user.not_found"
    bad = await api.call(
        "GET",
        _threads_url(s.alice, s) + f"?before={root['id']}&after={root['id']}",
        token=s.alice.token,
        expect=400,
    )
    assert bad["id"] == "api.getThreadsForUser.bad_params"
    for query in ("?since=yesterday", "?before=nope"):
        body = await api.call(
            "GET", _threads_url(s.alice, s) + query, token=s.alice.token, expect=400
        )
        assert body["id"] == "api.context.invalid_param.app_error"
    await api.call(
        "PUT",
        _threads_url(s.alice, s, f"/{root['id']}/read/soon"),
        token=s.alice.token,
        expect=400,
    )
    await api.call(
        "GET", f"/users/{s.alice.id}/teams/nope/threads", token=s.alice.token, expect=400
    )
    # A team the user is not in.
    team = await api.new_team(s.admin.token)
    not_member = await api.call(
        "GET",
        f"/users/{s.alice.id}/teams/{team['id']}/threads",
        token=s.alice.token,
        expect=403,
    )
    assert not_member["id"] == "api.context.permissions.app_error"
    await api.call("GET", _threads_url(s.alice, s), expect=401)
