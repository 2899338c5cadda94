"""Post search: the query language, permissions, scope, paging, and odd input."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from hubbub.app import Hubbub
from hubbub.store.tables import posts
from tests.support.api import API, User


@dataclass
class World:
    api: API
    admin: User
    alice: User
    bob: User
    team: dict[str, Any]
    town: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)

    async def post(self, user: User, channel_id: str, message: str, key: str = "") -> str:
        body = await self.api.call(
            "POST",
            "/posts",
            user.token,
            json={"channel_id": channel_id, "message": message},
            expect=201,
        )
        self.ids[key or message] = body["id"]
        return str(body["id"])

    async def search(
        self, user: User, terms: str, team_id: str | None = "", expect: int = 200, **extra: Any
    ) -> Any:
        team = self.team["id"] if team_id == "" else team_id
        path = f"/teams/{team}/posts/search" if team else "/posts/search"
        body = {"terms": terms, "is_or_search": False, **extra}
        return await self.api.call("POST", path, user.token, json=body, expect=expect)

    async def found(self, user: User, terms: str, **extra: Any) -> list[str]:
        """The keys of the posts found, newest first."""
        result = await self.search(user, terms, **extra)
        names = {v: k for k, v in self.ids.items()}
        assert set(result["posts"]) == set(result["order"])
        return [names.get(pid, pid) for pid in result["order"]]


@pytest.fixture
async def world(api: API, admin: User) -> World:
    """`admin` and `alice` in channel `town` of one team; `bob` in the team but not in `town`."""
    alice = await api.new_user(admin.token, prefix="alice")
    bob = await api.new_user(admin.token, prefix="bob")
    team = await api.new_team(admin.token)
    await api.add_to_team(admin.token, team["id"], alice.id)
    await api.add_to_team(admin.token, team["id"], bob.id)
    town = await api.new_channel(admin.token, team["id"], name="town")
    await api.add_to_channel(admin.token, town["id"], alice.id)
    w = World(api, admin, alice, bob, team, town)
    await w.post(admin, town["id"], "The quick brown fox jumps over the lazy dog")
    await w.post(alice, town["id"], "A quick rabbit runs home")
    await w.post(alice, town["id"], "fox brown is not a phrase")
    await w.post(admin, town["id"], "deployment finished for release #hotfix")
    return w


async def test_words_are_anded(world: World) -> None:
    assert await world.found(world.admin, "quick fox") == [
        "The quick brown fox jumps over the lazy dog"
    ]


async def test_or_search(world: World) -> None:
    found = await world.found(world.admin, "rabbit lazy", is_or_search=True)
    assert found == ["A quick rabbit runs home", "The quick brown fox jumps over the lazy dog"]
    assert await world.found(world.admin, "rabbit lazy") == []


async def test_quoted_phrase(world: World) -> None:
    assert await world.found(world.admin, '"brown fox"') == [
        "The quick brown fox jumps over the lazy dog"
    ]
    assert await world.found(world.admin, '"fox brown"') == ["fox brown is not a phrase"]


async def test_exclusion(world: World) -> None:
    assert await world.found(world.admin, "quick -rabbit") == [
        "The quick brown fox jumps over the lazy dog"
    ]
    assert await world.found(world.admin, 'fox -"lazy dog"') == ["fox brown is not a phrase"]


async def test_prefix(world: World) -> None:
    assert await world.found(world.admin, "rabb*") == ["A quick rabbit runs home"]
    assert await world.found(world.admin, "deploy*") == ["deployment finished for release #hotfix"]


async def test_stemming(world: World) -> None:
    assert await world.found(world.admin, "jumping") == [
        "The quick brown fox jumps over the lazy dog"
    ]


async def test_hashtag_is_a_word(world: World) -> None:
    assert await world.found(world.admin, "#hotfix") == ["deployment finished for release #hotfix"]


async def test_case_insensitive_and_unicode(world: World) -> None:
    await world.post(world.admin, world.town["id"], "Grüße aus Köln 日本語")
    assert await world.found(world.admin, "KÖLN") == ["Grüße aus Köln 日本語"]
    assert await world.found(world.admin, "köln") == ["Grüße aus Köln 日本語"]
    assert await world.found(world.admin, "日本語") == ["Grüße aus Köln 日本語"]


async def test_from_user(world: World) -> None:
    found = await world.found(world.admin, f"from:{world.alice.username} quick")
    assert found == ["A quick rabbit runs home"]
    only_from = await world.found(world.admin, f"from:@{world.alice.username}")
    assert only_from == ["fox brown is not a phrase", "A quick rabbit runs home"]
    assert await world.found(world.admin, "from:nobody-at-all quick") == []
    excluded = await world.found(world.admin, f"-from:{world.alice.username} quick")
    assert excluded == ["The quick brown fox jumps over the lazy dog"]


async def test_in_channel(world: World) -> None:
    other = await world.api.new_channel(world.admin.token, world.team["id"], name="other")
    await world.post(world.admin, other["id"], "quick note elsewhere")
    assert await world.found(world.admin, "quick in:other") == ["quick note elsewhere"]
    assert await world.found(world.admin, "quick channel:town") == [
        "A quick rabbit runs home",
        "The quick brown fox jumps over the lazy dog",
    ]
    assert await world.found(world.admin, "quick -in:town") == ["quick note elsewhere"]
    assert await world.found(world.admin, "quick in:no-such-channel") == []


async def test_in_direct_channel(world: World) -> None:
    dm = await world.api.call(
        "POST",
        "/channels/direct",
        world.admin.token,
        json=[world.admin.id, world.alice.id],
        expect=201,
    )
    await world.post(world.alice, dm["id"], "quick private word")
    found = await world.found(world.admin, f"quick in:@{world.alice.username}")
    assert found == ["quick private word"]
    # Direct channels belong to every team scope of their members.
    assert "quick private word" in await world.found(world.alice, "quick")


async def test_dates(world: World, node: Hubbub) -> None:
    keys = {}
    for day in (9, 10, 11):
        keys[day] = await world.post(world.admin, world.town["id"], f"dated entry {day}")
        at = int(datetime(2024, 3, day, 12, tzinfo=UTC).timestamp() * 1000)
        async with node.db.write() as conn:
            await conn.execute(update(posts).where(posts.c.id == keys[day]).values(create_at=at))
    assert await world.found(world.admin, "dated on:2024-03-10") == ["dated entry 10"]
    assert await world.found(world.admin, "dated after:2024-03-10") == ["dated entry 11"]
    assert await world.found(world.admin, "dated before:2024-03-10") == ["dated entry 9"]
    assert await world.found(world.admin, "dated after:2024-03-08 before:2024-03-11") == [
        "dated entry 10",
        "dated entry 9",
    ]
    # Noon UTC on the 10th is already the 11th at UTC+14.
    assert await world.found(world.admin, "dated on:2024-03-11", time_zone_offset=14 * 3600) == [
        "dated entry 10"
    ]
    # Only filters, no words.
    assert await world.found(world.admin, "on:2024-03-09") == ["dated entry 9"]


async def test_matches(world: World) -> None:
    result = await world.search(world.admin, "quick rabb*", is_or_search=True)
    fox = world.ids["The quick brown fox jumps over the lazy dog"]
    rabbit = world.ids["A quick rabbit runs home"]
    assert result["order"] == [rabbit, fox]
    assert result["matches"] == {rabbit: ["quick", "rabbit"], fox: ["quick"]}
    phrase = await world.search(world.admin, '"brown fox"')
    assert phrase["matches"] == {fox: ["brown fox"]}


async def test_order_is_newest_first_and_pages(world: World) -> None:
    for i in range(5):
        await world.post(world.admin, world.town["id"], f"paged item {i}")
    assert await world.found(world.admin, "paged") == [f"paged item {i}" for i in range(4, -1, -1)]
    page = await world.found(world.admin, "paged", page=1, per_page=2)
    assert page == ["paged item 2", "paged item 1"]
    assert await world.found(world.admin, "paged", page=10**6, per_page=200) == []


async def test_team_scope_and_all_teams(world: World) -> None:
    other_team = await world.api.new_team(world.admin.token)
    lobby = await world.api.new_channel(world.admin.token, other_team["id"])
    await world.post(world.admin, lobby["id"], "quick message in another team")
    in_team = await world.found(world.admin, "quick")
    assert "quick message in another team" not in in_team
    assert len(in_team) == 2
    everywhere = await world.found(world.admin, "quick", team_id=None)
    assert everywhere[0] == "quick message in another team"
    assert len(everywhere) == 3
    in_other = await world.found(world.admin, "quick", team_id=other_team["id"])
    assert in_other == ["quick message in another team"]


async def test_team_search_needs_membership(world: World) -> None:
    stranger = await world.api.new_user(world.admin.token, prefix="stranger")
    await world.search(stranger, "quick", expect=403)
    everywhere = await world.search(stranger, "quick", team_id=None)
    assert everywhere["order"] == []


async def test_private_channel_posts_stay_private(world: World) -> None:
    secret = await world.api.new_channel(world.admin.token, world.team["id"], type_="P")
    await world.post(world.admin, secret["id"], "classified banana plans")
    assert await world.found(world.admin, "banana") == ["classified banana plans"]
    assert await world.found(world.bob, "banana") == []
    assert await world.found(world.bob, "banana", team_id=None) == []
    assert await world.found(world.bob, f"banana in:{secret['name']}") == []
    # Not being in a public channel also keeps its posts out of one's results (as Mattermost).
    assert await world.found(world.bob, "quick") == []


async def test_deleted_posts_are_not_found(world: World) -> None:
    pid = world.ids["A quick rabbit runs home"]
    await world.api.call("DELETE", f"/posts/{pid}", world.alice.token)
    assert await world.found(world.admin, "rabbit") == []


async def test_archived_channels_only_on_request(world: World) -> None:
    old = await world.api.new_channel(world.admin.token, world.team["id"])
    await world.post(world.admin, old["id"], "archived walrus")
    await world.api.call("DELETE", f"/channels/{old['id']}", world.admin.token)
    assert await world.found(world.admin, "walrus") == []
    found = await world.found(world.admin, "walrus", include_deleted_channels=True)
    assert found == ["archived walrus"]


async def test_empty_terms_give_an_empty_list(world: World) -> None:
    for terms in ("", "   ", "-quick", '""', "***"):
        result = await world.search(world.admin, terms)
        assert result["order"] == [] and result["posts"] == {} and result["matches"] == {}


async def test_invalid_bodies_are_400(world: World) -> None:
    path = f"/teams/{world.team['id']}/posts/search"
    token = world.admin.token
    for body in (
        {},
        {"terms": 5},
        {"terms": "x", "is_or_search": "yes"},
        {"terms": "x", "page": "1"},
        {"terms": "x", "time_zone_offset": 10**30},
        [],
        "terms",
    ):
        await world.api.call("POST", path, token, json=body, expect=400)
    resp = await world.api.raw("POST", path, token, content=b"{not json")
    assert resp.status_code == 400
    await world.api.call("POST", "/teams/nope/posts/search", token, json={"terms": "x"}, expect=400)
    await world.api.call("POST", "/posts/search", None, json={"terms": "x"}, expect=401)


@pytest.mark.parametrize("config_overrides", [{"MM_SERVICESETTINGS_ENABLEPOSTSEARCH": "false"}])
async def test_search_disabled_is_501(world: World) -> None:
    await world.search(world.admin, "quick", expect=501)


ODD_INPUTS = [
    '"',
    '"quick',
    'quick"',
    '""quick""',
    '-"',
    '-""',
    "-",
    "--quick",
    "from:",
    "from: ",
    "in:",
    "-in:",
    "on:",
    "before:2024-13-45",
    "after:99999-01-01",
    "on:0001-01-01",
    "on:9999-12-31",
    "from:in:on:",
    "* ** *** quick*",
    "quick * fox",
    "!quick & | fox <-> :* ( )",
    "'quick' 'fox'",
    "\\ \\\\ \\'",
    "quick:* fox:A",
    "NEAR(quick fox) quick NOT fox OR AND",
    "^quick -fox +dog",
    "\x00quick\x00",
    "\u200b\u202e\ufeff",
    "😀 🦊 quick🦊",
    "Ωmega ǅ ß ﬁ",
    "#",
    "##",
    "@",
    "@@quick",
    "quick" * 500,
    " ".join(["quick"] * 1000),
    '"' + "quick fox " * 300 + '"',
    "-" * 3000,
    '"a" "b" "c" "d" "e" "f" "g" "h" "i"',
    "in:@",
    "in:@nobody",
    "from:" + "x" * 5000,
    "quick -quick",
    "the",
    "the and of",
    '"the of"',
]


@pytest.mark.parametrize("is_or", [False, True])
async def test_odd_input_never_fails(world: World, is_or: bool) -> None:
    rng = random.Random(20261121)
    alphabet = "abc xyz\"*-:#@\\'()&|!<>~^+0123456789éß日\x00\t\n"
    generated = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(60)
    ]
    for terms in ODD_INPUTS + generated:
        for team_id in ("", None):
            if "\x00" in terms:
                # NUL characters are refused for every JSON body (PostgreSQL cannot store them).
                error = await world.search(
                    world.admin, terms, team_id=team_id, is_or_search=is_or, expect=400
                )
                assert error["id"] == "api.context.invalid_body_param.app_error"
                continue
            result = await world.search(world.admin, terms, team_id=team_id, is_or_search=is_or)
            assert set(result["posts"]) == set(result["order"]), terms
            assert set(result["matches"]) <= set(result["order"]), terms


async def test_search_is_not_a_like_scan(world: World) -> None:
    # A substring of a word is not a word: full-text search, not LIKE '%...%'.
    assert await world.found(world.admin, "uick") == []
    assert await world.found(world.admin, "%") == []
    assert await world.found(world.admin, "_") == []
