"""User statuses over the API and the service rules the websocket layer relies on; on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from hubbub.app import Hubbub
from tests.support.api import API, User


async def test_default_is_offline(api: API, admin: User) -> None:
    status = await api.call("GET", f"/users/{admin.id}/status", token=admin.token)
    assert status == {
        "user_id": admin.id,
        "status": "offline",
        "manual": False,
        "last_activity_at": 0,
        "dnd_end_time": 0,
    }
    await api.call("GET", f"/users/{admin.id}/status", expect=401)


async def test_set_own_status_and_status_change_event(api: API, admin: User, node: Hubbub) -> None:
    user = await api.new_user(admin.token)
    body = {"user_id": user.id, "status": "away"}
    away = await api.call("PUT", "/users/me/status", token=user.token, json=body)
    assert away["status"] == "away" and away["manual"] is True
    assert await api.call("GET", "/users/me/status", token=user.token) == away
    [event] = node.events.named("status_change")
    assert event.data == {"status": "away", "user_id": user.id}
    assert event.broadcast.user_id == user.id and event.ephemeral
    online = await api.call(
        "PUT", "/users/me/status", token=user.token, json={**body, "status": "online"}
    )
    assert online["status"] == "online" and online["manual"] is False
    assert online["last_activity_at"] > 0
    # Setting the same status again sends nothing new.
    await api.call("PUT", "/users/me/status", token=user.token, json={**body, "status": "online"})
    assert len(node.events.named("status_change")) == 2


async def test_dnd_with_end_time(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    end = int(time.time()) + 3600
    dnd = await api.call(
        "PUT",
        f"/users/{user.id}/status",
        token=user.token,
        json={"user_id": user.id, "status": "dnd", "dnd_end_time": end},
    )
    assert dnd["status"] == "dnd" and dnd["manual"] is True
    assert dnd["dnd_end_time"] == end - end % 60


async def test_an_expired_dnd_reads_as_the_status_before_it(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    body = {"user_id": user.id, "status": "away"}
    await api.call("PUT", "/users/me/status", token=user.token, json=body)
    past = int(time.time()) - 120
    await api.call(
        "PUT",
        "/users/me/status",
        token=user.token,
        json={**body, "status": "dnd", "dnd_end_time": past},
    )
    status = await api.call("GET", "/users/me/status", token=user.token)
    assert status["status"] == "away" and status["dnd_end_time"] == 0


async def test_only_self_or_admin_and_bad_input(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    body = {"user_id": user.id, "status": "dnd"}
    denied = await api.call(
        "PUT", f"/users/{user.id}/status", token=other.token, json=body, expect=403
    )
    assert denied["id"] == "api.context.permissions.app_error"
    by_admin = await api.call("PUT", f"/users/{user.id}/status", token=admin.token, json=body)
    assert by_admin["status"] == "dnd"
    for bad in (
        {"user_id": user.id, "status": "busy"},
        {"user_id": other.id, "status": "away"},
        {"status": "away"},
        {"user_id": user.id, "status": 1},
        {"user_id": user.id, "status": "dnd", "dnd_end_time": "soon"},
    ):
        await api.call("PUT", f"/users/{user.id}/status", token=user.token, json=bad, expect=400)
    await api.call("PUT", "/users/not-an-id/status", token=user.token, json=body, expect=400)
    missing = "m" * 26
    await api.call(
        "PUT",
        f"/users/{missing}/status",
        token=admin.token,
        json={"user_id": missing, "status": "away"},
        expect=404,
    )


async def test_statuses_by_ids(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    await api.call(
        "PUT", "/users/me/status", token=user.token, json={"user_id": user.id, "status": "away"}
    )
    unknown = "u" * 26
    found = await api.call(
        "POST", "/users/status/ids", token=admin.token, json=[user.id, admin.id, unknown, user.id]
    )
    assert [(s["user_id"], s["status"]) for s in found] == [
        (user.id, "away"),
        (admin.id, "offline"),
        (unknown, "offline"),
    ]
    for bad in ([], ["nope"], [1], {"ids": []}):
        await api.call("POST", "/users/status/ids", token=admin.token, json=bad, expect=400)


async def test_automatic_changes_never_override_a_manual_status(
    api: API, admin: User, node: Hubbub
) -> None:
    user = await api.new_user(admin.token)
    automatic = await node.statuses.set_status(user.id, "online", manual=False)
    assert automatic["status"] == "online" and automatic["manual"] is False
    await api.call(
        "PUT", "/users/me/status", token=user.token, json={"user_id": user.id, "status": "dnd"}
    )
    kept = await node.statuses.set_status(user.id, "offline", manual=False)
    assert kept["status"] == "dnd" and kept["manual"] is True
    [status] = await node.statuses.get_many([user.id])
    assert status["status"] == "dnd"


async def test_automatic_statuses_for_many_users_in_one_call(
    api: API, admin: User, node: Hubbub
) -> None:
    """What presence writes for a burst of sockets: new rows, changed rows, a manual status
    left alone, an unchanged one skipped; one status_change per change."""
    new, existing, manual, same = [await api.new_user(admin.token) for _ in range(4)]
    await node.statuses.set_status(existing.id, "away", manual=False)
    await node.statuses.set_status(same.id, "online", manual=False)
    await api.call(
        "PUT", "/users/me/status", token=manual.token, json={"user_id": manual.id, "status": "dnd"}
    )
    events_before = len(node.events.named("status_change"))
    wanted = {u.id: "online" for u in (new, existing, manual, same)}
    await node.statuses.set_automatic_many(wanted)
    got = {s["user_id"]: s for s in await node.statuses.get_many(wanted)}
    assert {u: s["status"] for u, s in got.items()} == {
        new.id: "online",
        existing.id: "online",
        manual.id: "dnd",
        same.id: "online",
    }
    assert got[new.id]["manual"] is False and got[new.id]["last_activity_at"] > 0
    changes = node.events.named("status_change")[events_before:]
    assert sorted(e.data["user_id"] for e in changes) == sorted([new.id, existing.id])
    assert all(e.data["status"] == "online" and e.ephemeral for e in changes)
    await node.statuses.set_automatic_many({new.id: "offline", existing.id: "away"})
    got = {s["user_id"]: s["status"] for s in await node.statuses.get_many([new.id, existing.id])}
    assert got == {new.id: "offline", existing.id: "away"}


async def test_concurrent_status_reads_share_statements_on_sqlite(
    api: API, admin: User, node: Hubbub
) -> None:
    """The web app asks for statuses in bursts (every user a `typing` event names); on SQLite
    the reads that arrive together share one statement, and each still gets its own answer,
    never older than its request (a change made before it is seen)."""
    users = [await api.new_user(admin.token) for _ in range(3)]
    await node.statuses.set_status(users[0].id, "dnd", manual=True)
    reads = node.statuses._reads
    before = reads.batches if reads is not None else 0
    asks = [[u.id for u in users[i:] + users[:i]] for i in range(3)] * 10
    answers = await asyncio.gather(
        *(api.call("POST", "/users/status/ids", token=admin.token, json=ids) for ids in asks)
    )
    for ids, answer in zip(asks, answers, strict=True):
        assert [s["user_id"] for s in answer] == ids
        assert {s["user_id"]: s["status"] for s in answer}[users[0].id] == "dnd"
    if node.db.is_sqlite:
        assert reads is not None and reads.batches - before < len(asks)
    else:
        assert reads is None
