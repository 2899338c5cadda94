"""How many trips to SQLite's connection threads one `POST /api/v4/posts` makes.

aiosqlite runs each SQLite connection in a thread of its own; every call crosses to it and back
(a queue, a future, a wake-up of the event loop): about 20 per POST once, each statement paying
for its cursor, its execution, its rows and its close separately. hubbub's driver
(`hubbub/store/sqlite_driver.py`) runs a statement with its rows in one trip. Counted here on an
in-process node on SQLite, steady state (caches warm), as an upper bound that must hold.
"""

from __future__ import annotations

import aiosqlite
import pytest

from hubbub.app import Hubbub
from tests.support.api import API, User

POSTS = 30
MAX_HOPS_PER_POST = 5


class Trips:
    count = 0


def count_trips(monkeypatch: pytest.MonkeyPatch) -> Trips:
    """Counts every crossing to an aiosqlite connection's thread from now on."""
    trips = Trips()
    real = aiosqlite.Connection._execute

    async def counted(
        self: aiosqlite.Connection, fn: object, *args: object, **kw: object
    ) -> object:
        trips.count += 1
        return await real(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


@pytest.fixture(params=["sqlite"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_post_makes_few_trips_to_the_sqlite_threads(
    api: API,
    admin: User,
    node: Hubbub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    team = await api.call(
        "POST", "/teams", admin.token, {"name": "hops", "display_name": "Hops", "type": "O"}, 201
    )
    channel = await api.call(
        "POST",
        "/channels",
        admin.token,
        {"team_id": team["id"], "name": "hops", "display_name": "Hops", "type": "O"},
        201,
    )
    body = {"channel_id": channel["id"], "message": "warm-up"}
    for _ in range(3):
        await api.call("POST", "/posts", admin.token, body, 201)

    trips = count_trips(monkeypatch)
    for i in range(POSTS):
        await api.call("POST", "/posts", admin.token, {**body, "message": f"post {i}"}, 201)
    per_post = trips.count / POSTS
    with capsys.disabled():
        print(f"\nSQLite thread trips per POST /posts: {per_post:.1f}")
    assert per_post <= MAX_HOPS_PER_POST


async def test_a_read_makes_one_trip(
    api: API, admin: User, node: Hubbub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that only reads: its query, and no rollback when the pool takes the connection
    back (no transaction was open)."""
    user = await api.call("GET", f"/users/{admin.id}", admin.token)
    trips = count_trips(monkeypatch)
    for _ in range(10):
        assert await api.call("GET", f"/users/{admin.id}", admin.token) == user
    assert trips.count <= 10
