"""Bad input never breaks the server: every refusal is an AppError with the right status.

Each case is a request Mattermost answers with a 4xx; hubbub must give the same status with an
AppError body (`id`, `message`, `detailed_error`, `request_id`, `status_code`) and exactly
`Content-Type: application/json`. Runs in-process on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import urllib.request
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hubbub.app import Hubbub
from hubbub.config import load_config
from hubbub.ids import is_valid_id, new_id
from tests.support.api import API, PASSWORD, User
from tests.support.postgres import fresh_postgres_database
from tests.support.server import ServerProcess, start_server

PAYLOAD_LIMIT = 20_000  # above a maximal post (16383 runes), below the default 300000
BAD_ID = "abc123"  # letters and digits, so Mattermost's router matches it; but not 26 long
# A well-formed id that names nothing: fixed, so that test ids are the same in every process
# (pytest-xdist collects in each worker).
UNKNOWN = "q7xw3kfbj3ns5mh1yz8k6o4u1a"


# One node per database kind for the whole module: hundreds of small requests, none of which
# should change what the next one sees (a fresh node per case would cost a second each).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    workdir = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    env = {
        "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        "MM_SERVICESETTINGS_MAXIMUMPAYLOADSIZEBYTES": str(PAYLOAD_LIMIT),
    }
    if request.param == "sqlite":
        env["MM_SQLSETTINGS_DATASOURCE"] = str(workdir / "hubbub.db")
    else:
        env["MM_SQLSETTINGS_DRIVERNAME"] = "postgres"
        env["MM_SQLSETTINGS_DATASOURCE"] = fresh_postgres_database(
            request.getfixturevalue("postgres")
        )
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(module_env: dict[str, str]) -> AsyncIterator[API]:
    node = Hubbub(load_config(None, environ=module_env))
    await node.start()
    try:
        transport = httpx.ASGITransport(app=node.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://hubbub.test") as c:
            yield API(c)
    finally:
        await node.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(api: API) -> User:
    return await api.new_user(prefix="admin")


def assert_app_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    where = f"{resp.request.method} {resp.request.url.path}"
    assert resp.status_code == status, f"{where}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers.get("content-type") == "application/json", (where, resp.headers)
    body = resp.json()
    assert isinstance(body, dict), (where, body)
    for key in ("id", "message", "detailed_error", "request_id"):
        assert isinstance(body.get(key), str), (where, key, body)
    assert body["id"] and body["message"], (where, body)
    assert body["status_code"] == status, (where, body)
    assert is_valid_id(body["request_id"]), (where, body)
    assert resp.headers.get("x-request-id") == body["request_id"], where
    return body


async def send(
    api: API,
    method: str,
    path: str,
    token: str | None = None,
    *,
    body: bytes | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("content-type", "application/json")
        return await api.raw(method, path, token=token, content=body, headers=hdrs)
    return await api.raw(method, path, token=token, json=json, headers=hdrs)


async def still_serving(api: API, user: User) -> None:
    me = await api.call("GET", "/users/me", token=user.token)
    assert me["id"] == user.id


# --- JSON that does not parse, or is not what the endpoint takes --------------------------------

MALFORMED = [b'{"login_id": ', b"{'a': 1}", b"[1, 2", b"\xff\xfe{}", b"[" * 1500 + b"]" * 1500]


@pytest.mark.parametrize(
    "raw", MALFORMED, ids=["truncated", "single-quotes", "open-array", "not-utf8", "deep"]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/users/login"),
        ("POST", "/users"),
        ("PUT", "/users/me/patch"),
        ("POST", "/users/ids"),
        ("POST", "/users/search"),
        ("POST", "/teams"),
        ("POST", "/channels"),
        ("POST", "/channels/direct"),
        ("POST", "/posts"),
        ("POST", "/reactions"),
        ("POST", "/users/status/ids"),
        ("PUT", "/users/me/status"),
        ("POST", "/channels/members/me/view"),
    ],
)
async def test_malformed_json_is_400(
    api: API, admin: User, method: str, path: str, raw: bytes
) -> None:
    token = None if path == "/users/login" else admin.token
    assert_app_error(await send(api, method, path, token, body=raw), 400)


WRONG_SHAPE = [
    # An array or a scalar where an object is expected.
    ("POST", "/users/login", []),
    ("POST", "/users/login", "admin"),
    ("PUT", "/users/me/patch", [{"nickname": "x"}]),
    ("POST", "/users/search", ["term"]),
    ("POST", "/teams", [{"name": "x"}]),
    ("POST", "/channels", "x"),
    ("POST", "/posts", []),
    ("POST", "/reactions", [1]),
    ("PUT", "/users/me/status", ["online"]),
    ("POST", "/channels/members/me/view", []),
    # An object or a scalar where an array is expected.
    ("POST", "/users/ids", {"ids": []}),
    ("POST", "/users/usernames", "admin"),
    ("POST", "/users/status/ids", {}),
    ("POST", "/channels/direct", {"a": 1}),
    ("POST", "/channels/group", 7),
    # Arrays of the wrong element type.
    ("POST", "/users/ids", [1, 2]),
    ("POST", "/users/ids", []),
    ("POST", "/users/status/ids", [None]),
    ("POST", "/channels/direct", [[], {}]),
    # Numbers, booleans and objects where strings are expected.
    ("PUT", "/users/me/patch", {"nickname": 5}),
    ("PUT", "/users/me/patch", {"first_name": {"a": 1}}),
    ("PUT", "/users/me/patch", {"notify_props": {"email": True}}),
    ("PUT", "/users/me/patch", {"timezone": "UTC"}),
    ("PUT", "/users/me", {"props": ["x"]}),
    ("POST", "/users/search", {"term": 12}),
    ("POST", "/teams", {"name": 5, "display_name": "Five", "type": "O"}),
    ("POST", "/channels", {"team_id": 5, "name": "x", "display_name": "x", "type": "O"}),
    ("POST", "/posts", {"channel_id": 5, "message": "x"}),
    ("POST", "/posts", {"channel_id": UNKNOWN, "message": ["x"]}),
    ("POST", "/reactions", {"user_id": True, "post_id": UNKNOWN, "emoji_name": "smile"}),
    ("PUT", "/users/me/status", {"status": 1}),
    ("POST", "/channels/members/me/view", {"channel_id": 1}),
    ("POST", "/teams/{team}/posts/search", {"terms": 1}),
    ("POST", "/drafts", []),
    ("POST", "/drafts", {"channel_id": 5, "message": "x"}),
    ("POST", "/drafts", {"channel_id": UNKNOWN, "message": "x", "file_ids": "x"}),
    ("POST", "/emoji/search", ["term"]),
    ("POST", "/emoji/search", {"term": 5}),
    ("POST", "/emoji/names", {"names": []}),
    ("POST", "/emoji/names", [1]),
]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    WRONG_SHAPE,
    ids=[f"{m} {p} {v!r}"[:60] for m, p, v in WRONG_SHAPE],
)
async def test_json_of_the_wrong_type_is_400(
    api: API, admin: User, method: str, path: str, payload: Any
) -> None:
    if "{team}" in path:
        team = await api.new_team(admin.token)
        path = path.replace("{team}", team["id"])
    token = None if path == "/users/login" else admin.token
    assert_app_error(await send(api, method, path, token, json=payload), 400)
    await still_serving(api, admin)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/channels"), ("POST", "/posts"), ("POST", "/users/ids"), ("PUT", "/users/me/patch")],
)
@pytest.mark.parametrize("raw", [b"", b"null", b"   "], ids=["empty", "null", "blank"])
async def test_missing_body_is_400(
    api: API, admin: User, method: str, path: str, raw: bytes
) -> None:
    assert_app_error(await send(api, method, path, admin.token, body=raw), 400)


NUL_REQUESTS: list[tuple[str, str, Any]] = [
    ("PUT", "/users/me/patch", {"nickname": "a\u0000b"}),
    ("POST", "/users/search", {"term": "\u0000"}),
    ("POST", "/users/ids", ["\u0000" * 26]),
    ("POST", "/users/usernames", ["ad\u0000min"]),
    ("GET", "/users/username/ad%00min", None),
    ("GET", "/users/email/a%00@example.com", None),
    ("GET", "/teams/name/x%00y", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), NUL_REQUESTS)
async def test_nul_characters_are_never_a_server_error(
    api: API, admin: User, method: str, path: str, payload: Any
) -> None:
    # PostgreSQL refuses NUL in text (Mattermost answers 500 there too: mattermost/mattermost
    # issue 28280); SQLite stores it. Either way the client gets a client-facing answer.
    resp = await send(api, method, path, admin.token, json=payload)
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert_app_error(resp, resp.status_code)
    await still_serving(api, admin)


async def test_invalid_ids_in_bodies_are_400(api: API, admin: User) -> None:
    assert_app_error(await send(api, "POST", "/users/status/ids", admin.token, json=[BAD_ID]), 400)
    assert_app_error(
        await send(api, "POST", "/channels/direct", admin.token, json=[admin.id, BAD_ID]), 400
    )


# --- Ids in paths --------------------------------------------------------------------------------

ID_PATHS = [
    ("GET", "/users/{x}"),
    ("GET", "/users/{x}/teams"),
    ("GET", "/users/{x}/status"),
    ("GET", "/teams/{x}"),
    ("GET", "/teams/{x}/channels"),
    ("GET", "/users/me/teams/{x}/channels"),
    ("GET", "/users/me/teams/{x}/channels/members"),
    ("GET", "/channels/{x}"),
    ("GET", "/channels/{x}/members"),
    ("GET", "/channels/{x}/posts"),
    ("GET", "/posts/{x}"),
    ("GET", "/posts/{x}/thread"),
    ("GET", "/posts/{x}/reactions"),
    ("GET", "/posts/{x}/files/info"),
    ("PUT", "/posts/{x}/patch"),
    ("DELETE", "/posts/{x}"),
    ("GET", "/files/{x}"),
    ("GET", "/files/{x}/info"),
    ("DELETE", "/users/me/posts/{x}/reactions/smile"),
    ("POST", "/teams/{x}/posts/search"),
    ("GET", "/emoji/{x}"),
    ("GET", "/emoji/{x}/image"),
    ("DELETE", "/emoji/{x}"),
    ("GET", "/users/{x}/image"),
    ("GET", "/users/{x}/image/default"),
    ("GET", "/users/me/teams/{x}/threads"),
    ("PUT", "/users/me/teams/{x}/threads/read"),
    ("GET", "/users/me/teams/{x}/drafts"),
    ("DELETE", "/users/me/channels/{x}/drafts"),
    ("GET", "/jobs/{x}"),
    ("POST", "/jobs/{x}/cancel"),
    ("GET", "/jobs/{x}/download"),
]


@pytest.mark.parametrize(("method", "path"), ID_PATHS)
async def test_malformed_path_id_is_400(api: API, admin: User, method: str, path: str) -> None:
    payload = {"message": "x", "terms": "x"} if method in {"PUT", "POST"} else None
    resp = await send(api, method, path.format(x=BAD_ID), admin.token, json=payload)
    assert_app_error(resp, 400)


# Not `GET /users/{x}/status`: Mattermost answers "offline" for any id, known or not.
NOT_FOUND_PATHS = [
    ("GET", "/users/{x}"),
    ("GET", "/teams/{x}"),
    ("GET", "/channels/{x}"),
    ("GET", "/posts/{x}"),
    ("GET", "/posts/{x}/thread"),
    ("DELETE", "/posts/{x}"),
    ("GET", "/files/{x}"),
    ("GET", "/files/{x}/info"),
    ("GET", "/emoji/{x}"),
    ("GET", "/emoji/{x}/image"),
    ("DELETE", "/emoji/{x}"),
    ("GET", "/users/{x}/image"),
    ("GET", "/jobs/{x}"),
    ("POST", "/jobs/{x}/cancel"),
    ("GET", "/jobs/{x}/download"),
]


@pytest.mark.parametrize(("method", "path"), NOT_FOUND_PATHS)
async def test_unknown_well_formed_id_is_404(api: API, admin: User, method: str, path: str) -> None:
    # As a system admin, so that no permission check can answer 403 first.
    assert_app_error(await send(api, method, path.format(x=UNKNOWN), admin.token), 404)


# --- Authentication ------------------------------------------------------------------------------

AUTH_PATHS = [
    ("GET", "/users/me"),
    ("GET", "/users"),
    ("POST", "/users/ids"),
    ("GET", "/users/me/teams"),
    ("POST", "/teams"),
    ("GET", f"/teams/{UNKNOWN}"),
    ("POST", "/channels"),
    ("GET", f"/channels/{UNKNOWN}"),
    ("GET", f"/channels/{UNKNOWN}/posts"),
    ("POST", "/channels/direct"),
    ("POST", "/posts"),
    ("GET", f"/posts/{UNKNOWN}"),
    ("POST", "/reactions"),
    ("POST", "/files"),
    ("GET", f"/files/{UNKNOWN}"),
    ("POST", "/users/status/ids"),
    ("GET", f"/users/{UNKNOWN}/status"),
    ("POST", "/channels/members/me/view"),
    ("POST", f"/teams/{UNKNOWN}/posts/search"),
    ("GET", "/emoji"),
    ("POST", "/emoji"),
    ("POST", "/drafts"),
    ("GET", f"/users/me/teams/{UNKNOWN}/threads"),
    ("GET", f"/users/{UNKNOWN}/image"),
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", f"/jobs/{UNKNOWN}"),
]


@pytest.mark.parametrize(("method", "path"), AUTH_PATHS)
async def test_missing_or_bad_token_is_401(api: API, admin: User, method: str, path: str) -> None:
    body = await send(api, method, path, None, json={})
    assert assert_app_error(body, 401)["id"] == "api.context.session_expired.app_error"
    wrong = await send(api, method, path, new_id(), json={})
    assert_app_error(wrong, 401)
    garbage = await send(api, method, path, headers={"Authorization": "Bearer"})
    assert_app_error(garbage, 401)


# --- Body size -----------------------------------------------------------------------------------


async def test_body_over_the_limit_with_content_length_is_413(api: API, admin: User) -> None:
    big = b'{"nickname": "' + b"x" * PAYLOAD_LIMIT + b'"}'
    for method, path in [
        ("PUT", "/users/me/patch"),
        ("POST", "/users/login"),
        ("POST", "/users/ids"),
    ]:
        resp = await send(api, method, path, admin.token, body=big)
        assert "content-length" in {k.lower() for k in resp.request.headers}
        assert_app_error(resp, 413)
    # Exactly at the limit is fine (the padding is JSON whitespace).
    head = b'{"nickname": "padded"'
    ok = head + b" " * (PAYLOAD_LIMIT - len(head) - 1) + b"}"
    assert len(ok) == PAYLOAD_LIMIT
    patched = await send(api, "PUT", "/users/me/patch", admin.token, body=ok)
    assert patched.status_code == 200, patched.text
    assert patched.json()["nickname"] == "padded"
    await still_serving(api, admin)


async def test_body_over_the_limit_when_chunked_is_413(api: API, admin: User) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"nickname": "'
        for _ in range(PAYLOAD_LIMIT // 512 + 2):
            yield b"x" * 512
        yield b'"}'

    for method, path in [
        ("PUT", "/users/me/patch"),
        ("POST", "/users/login"),
        ("POST", "/users/ids"),
    ]:
        resp = await api.client.request(
            method,
            "/api/v4" + path,
            content=chunks(),
            headers={"Authorization": f"Bearer {admin.token}", "content-type": "application/json"},
        )
        assert resp.request.headers.get("transfer-encoding") == "chunked"
        assert_app_error(resp, 413)
    await still_serving(api, admin)


async def test_declared_length_over_the_limit_is_413_before_reading(api: API, admin: User) -> None:
    # A lying Content-Length is refused from the header alone.
    resp = await api.client.request(
        "POST",
        "/api/v4/users/ids",
        content=b"[]",
        headers={
            "Authorization": f"Bearer {admin.token}",
            "content-type": "application/json",
            "content-length": str(PAYLOAD_LIMIT * 10),
        },
    )
    assert_app_error(resp, 413)


# --- Routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/users/me/nope/deeper"),
        ("POST", "/nope"),
        ("GET", "/"),
        ("DELETE", f"/posts/{UNKNOWN}/nope"),
    ],
)
async def test_unknown_route_is_404(api: API, admin: User, method: str, path: str) -> None:
    for token in (admin.token, None):
        body = assert_app_error(await send(api, method, path, token), 404)
        assert body["id"] == "api.context.404.app_error"


# Paths that no route of another method could take as a parameter (`GET /users/login` is
# `GET /users/{user_id}` with a bad id, a 400, in Mattermost as here).
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/system/ping"),
        ("PATCH", "/users/me"),
        ("PATCH", f"/posts/{UNKNOWN}"),
        ("PUT", "/posts"),
        ("GET", "/reactions"),
        ("GET", "/files"),
        ("DELETE", "/users/status/ids"),
        ("DELETE", "/channels/members/me/view"),
    ],
)
async def test_wrong_method_is_405(api: API, admin: User, method: str, path: str) -> None:
    assert_app_error(await send(api, method, path, admin.token), 405)


# --- Query parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page=abc&per_page=xyz",
        "page=-3&per_page=-1",
        "per_page=100000",
        "page=1e3",
        "page=%EF%BC%91",  # a full-width digit: Python's int() takes it, Go's Atoi does not
        "page=1000000000000000000&per_page=200",  # page * per_page beyond a 64-bit OFFSET
        "page=99999999999999999999999",  # beyond int64: invalid, so page 0
    ],
)
@pytest.mark.parametrize("path", ["/users", "/teams", "/bots"])
async def test_bad_paging_values_fall_back_like_mattermost(
    api: API, admin: User, path: str, query: str
) -> None:
    listed = await api.call("GET", f"{path}?{query}", token=admin.token)
    assert isinstance(listed, list)


@dataclass
class World:
    admin: User
    team: dict[str, Any]
    channel: dict[str, Any]
    post: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(api: API, admin: User) -> World:
    team = await api.new_team(admin.token)
    channel = await api.new_channel(admin.token, team["id"])
    post = await api.call(
        "POST",
        "/posts",
        token=admin.token,
        json={"channel_id": channel["id"], "message": "hello"},
        expect=201,
    )
    return World(admin, team, channel, post)


@pytest.mark.parametrize(
    "query",
    [
        "since=abc",
        "since=99999999999999999999",  # beyond int64, as Go's ParseInt refuses it
        "before=abc",
        "after=abc",
        f"before={'a' * 27}",
        "after=%0A",
    ],
)
async def test_bad_history_cursors_are_400(api: API, world: World, query: str) -> None:
    resp = await send(
        api, "GET", f"/channels/{world.channel['id']}/posts?{query}", world.admin.token
    )
    assert_app_error(resp, 400)


async def test_out_of_range_numbers_in_queries_are_400(api: API, world: World) -> None:
    team = world.team["id"]
    for path in (
        f"/users/me/teams/{team}/channels?last_delete_at=902739142568347959296",
        f"/users/me/teams/{team}/channels?last_delete_at=1_000",
    ):
        assert_app_error(await send(api, "GET", path, world.admin.token), 400)


async def test_nul_characters_in_posts_are_never_a_server_error(api: API, world: World) -> None:
    cid = world.channel["id"]
    for payload in (
        {"channel_id": cid, "message": "a\u0000b"},
        {"channel_id": cid, "message": "x", "file_ids": ["\u0000"]},
        {"channel_id": cid, "message": "x", "props": {"k\u0000": "v\u0000"}},
    ):
        resp = await send(api, "POST", "/posts", world.admin.token, json=payload)
        assert resp.status_code < 500, resp.text
        if resp.status_code >= 400:
            assert_app_error(resp, resp.status_code)
    await still_serving(api, world.admin)


async def test_bad_post_bodies_are_400(api: API, world: World) -> None:
    cid = world.channel["id"]
    cases: list[dict[str, Any]] = [
        {"channel_id": cid, "message": "x" * 16384},  # over MaxPostSize (16383 runes)
        {"channel_id": cid, "message": "x", "root_id": BAD_ID},
        {"channel_id": BAD_ID, "message": "x"},
        {"channel_id": cid, "message": "x", "file_ids": "notalist"},
        {"channel_id": cid, "message": "x", "props": []},
    ]
    for payload in cases:
        assert_app_error(await send(api, "POST", "/posts", world.admin.token, json=payload), 400)
    patch = await send(
        api, "PUT", f"/posts/{world.post['id']}/patch", world.admin.token, json={"message": 1}
    )
    assert_app_error(patch, 400)
    await still_serving(api, world.admin)


async def test_bad_reaction_and_status_values_are_400(api: API, world: World) -> None:
    bad_emoji = {"user_id": world.admin.id, "post_id": world.post["id"], "emoji_name": "no spaces!"}
    assert_app_error(await send(api, "POST", "/reactions", world.admin.token, json=bad_emoji), 400)
    bad_status = {"user_id": world.admin.id, "status": "sleeping"}
    resp = await send(api, "PUT", "/users/me/status", world.admin.token, json=bad_status)
    assert_app_error(resp, 400)


async def test_upload_without_files_or_channel_is_400(api: API, world: World) -> None:
    token = world.admin.token
    no_channel = await api.raw("POST", "/files", token=token, files={"files": ("a.txt", b"hi")})
    assert_app_error(no_channel, 400)
    no_files = await api.raw(
        "POST", "/files", token=token, data={"channel_id": world.channel["id"]}, files={}
    )
    assert no_files.status_code == 400 or no_files.status_code == 201, no_files.text
    if no_files.status_code == 400:
        assert_app_error(no_files, 400)
    not_multipart = await send(api, "POST", "/files", token, body=b"{}")
    assert_app_error(not_multipart, 400)


async def test_server_still_answers_after_abuse(api: API, admin: User) -> None:
    for raw in MALFORMED:
        await send(api, "POST", "/users/login", body=raw)
        await send(api, "PUT", "/users/me/patch", admin.token, body=raw)
    for method, path in ID_PATHS:
        await send(api, method, path.format(x=BAD_ID), admin.token)
    other = await api.new_user(admin.token)
    await still_serving(api, other)
    login = await api.call(
        "POST", "/users/login", json={"login_id": other.username, "password": PASSWORD}
    )
    assert login["id"] == other.id


async def test_repeated_slashes_are_cleaned_like_mattermosts_router(api: API, admin: User) -> None:
    # mattermostdriver's get_reactions_of_post asks for /posts/{id}//reactions.
    resp = await api.client.get(
        "/api/v4//users///me", headers={"Authorization": f"Bearer {admin.token}"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == admin.id


# --- The same limits over a real connection (uvicorn, not the in-process transport) -------------


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("bad-input")
    env = {
        "MM_SQLSETTINGS_DATASOURCE": str(workdir / "hubbub.db"),
        "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        "MM_SERVICESETTINGS_MAXIMUMPAYLOADSIZEBYTES": str(PAYLOAD_LIMIT),
        "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
    }
    with warnings.catch_warnings():
        # See tests/compat/conftest.py: start_server leaves its log handle to the collector.
        warnings.simplefilter("ignore", ResourceWarning)
        server = start_server(workdir, env)
        gc.collect()
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()[-4000:]


def _raw_request(
    port: int, path: str, body: bytes | Iterator[bytes], chunked: bool
) -> httpx.Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        raw = conn.getresponse()
        request = httpx.Request("POST", f"http://127.0.0.1:{port}{path}")
        return httpx.Response(
            raw.status, headers=raw.getheaders(), content=raw.read(), request=request
        )
    finally:
        conn.close()


async def test_oversized_bodies_over_a_real_connection(real_server: ServerProcess) -> None:
    await asyncio.to_thread(_oversized_bodies, real_server)


def _oversized_bodies(real_server: ServerProcess) -> None:
    big = b'{"login_id": "' + b"x" * (PAYLOAD_LIMIT * 2) + b'", "password": "p"}'
    declared = _raw_request(real_server.port, "/api/v4/users/login", big, chunked=False)
    assert_app_error(declared, 413)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    streamed = _raw_request(real_server.port, "/api/v4/users/login", chunks(), chunked=True)
    assert_app_error(streamed, 413)

    small = _raw_request(
        real_server.port, "/api/v4/users/login", b'{"login_id": "a", "password": "b"}', False
    )
    assert_app_error(small, 401)
    with urllib.request.urlopen(f"{real_server.url}/api/v4/system/ping", timeout=5) as resp:
        assert resp.status == 200
