"""Users, login, sessions, tokens and bots over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from hubbub.app import Hubbub
from tests.support.api import API, PASSWORD, User


async def test_first_user_is_admin_and_later_signup_is_closed(api: API, admin: User) -> None:
    assert "system_admin" in admin.data["roles"].split()
    body = await api.call(
        "POST",
        "/users",
        json={"email": "x@example.com", "username": "xavier", "password": PASSWORD},
        expect=403,
    )
    assert body["id"] == "api.user.create_user.no_open_server"
    other = await api.new_user(admin.token)
    assert other.data["roles"] == "system_user"


async def test_login_answers_200_with_token_header_and_no_cookies_without_xhr(
    api: API, admin: User
) -> None:
    resp = await api.raw(
        "POST", "/users/login", json={"login_id": admin.username, "password": PASSWORD}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert len(resp.headers["Token"]) == 26
    assert "set-cookie" not in resp.headers
    assert "password" not in resp.json()


async def test_xhr_login_sets_cookies_and_cookie_session_needs_csrf(api: API, admin: User) -> None:
    resp = await api.raw(
        "POST",
        "/users/login",
        json={"login_id": admin.username, "password": PASSWORD},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    cookies = {c.name: c.value for c in api.client.cookies.jar}
    assert {"MMAUTHTOKEN", "MMUSERID", "MMCSRF"} <= set(cookies)
    assert cookies["MMAUTHTOKEN"] == resp.headers["Token"]
    me = await api.call("GET", "/users/me")
    assert me["id"] == admin.id
    # A cookie session writes with the CSRF token...
    ok = await api.call(
        "PUT",
        "/users/me/patch",
        json={"nickname": "n"},
        headers={"X-CSRF-Token": cookies["MMCSRF"]},
    )
    assert ok["nickname"] == "n"
    # ...and is refused without it (or the XHR header); the refusal clears the cookie.
    denied = await api.call("PUT", "/users/me/patch", json={"nickname": "m"}, expect=401)
    assert denied["id"] == "api.context.session_expired.app_error"
    api.client.cookies.clear()


async def test_bearer_scheme_is_case_insensitive_and_bad_tokens_get_401(
    api: API, admin: User
) -> None:
    me = await api.call("GET", "/users/me", headers={"Authorization": f"BEARER {admin.token}"})
    assert me["username"] == admin.username
    body = await api.call("GET", "/users/me", token="x" * 26, expect=401)
    assert body["id"] == "api.context.session_expired.app_error"
    await api.call("GET", "/users/me", expect=401)


async def test_wrong_password_and_logout(api: API, admin: User) -> None:
    body = await api.call(
        "POST",
        "/users/login",
        json={"login_id": admin.username, "password": "nope-nope"},
        expect=401,
    )
    assert body["id"] == "api.user.login.invalid_credentials_email_username"
    await api.call("POST", "/users/logout", token=admin.token)
    await api.call("GET", "/users/me", token=admin.token, expect=401)


async def test_concurrent_reads_by_ids_share_statements_on_sqlite(
    api: API, admin: User, node: Hubbub
) -> None:
    """`POST /users/ids` in a burst (the web app's answer to `typing` events): on SQLite the
    reads that arrive together share one statement; each answer has exactly the users it asked
    for (unknown ids left out), and with `since` only those updated after it."""
    users = [await api.new_user(admin.token) for _ in range(3)]
    cut = max(u.data["update_at"] for u in users)
    patched = await api.call(
        "PUT", f"/users/{users[0].id}/patch", token=admin.token, json={"nickname": "newer"}
    )
    assert patched["update_at"] > cut
    unknown = "u" * 26
    asks = [[u.id for u in users[i:] + users[:i]] + [unknown] for i in range(3)] * 10
    by_ids = node.users._by_ids
    before = by_ids.batches if by_ids is not None else 0
    answers, since = await asyncio.gather(
        asyncio.gather(
            *(api.call("POST", "/users/ids", token=admin.token, json=ids) for ids in asks)
        ),
        asyncio.gather(
            *(
                api.call("POST", f"/users/ids?since={cut}", token=admin.token, json=ids)
                for ids in asks
            )
        ),
    )
    for ids, answer in zip(asks, answers, strict=True):
        assert sorted(u["id"] for u in answer) == sorted(ids[:3])
    for answer in since:
        assert [(u["id"], u["nickname"]) for u in answer] == [(users[0].id, "newer")]
    if node.db.is_sqlite:
        assert by_ids is not None and by_ids.batches - before < 2 * len(asks)
    else:
        assert by_ids is None


async def test_get_by_ids_usernames_search_and_etag(api: API, admin: User) -> None:
    bob = await api.new_user(admin.token, prefix="bob")
    found = await api.call("POST", "/users/ids", token=admin.token, json=[bob.id, admin.id])
    assert {u["id"] for u in found} == {bob.id, admin.id}
    by_name = await api.call("POST", "/users/usernames", token=admin.token, json=[bob.username])
    assert by_name[0]["id"] == bob.id
    hits = await api.call("POST", "/users/search", token=admin.token, json={"term": "bob"})
    assert [u["id"] for u in hits] == [bob.id]
    auto = await api.call("GET", "/users/autocomplete?name=bo", token=admin.token)
    assert auto["users"][0]["id"] == bob.id
    resp = await api.raw("GET", f"/users/{bob.id}", token=admin.token)
    etag = resp.headers["etag"]
    again = await api.raw(
        "GET", f"/users/{bob.id}", token=admin.token, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304


async def test_personal_access_token_and_bot(api: API, admin: User) -> None:
    bot = await api.call(
        "POST",
        "/bots",
        token=admin.token,
        json={"username": "helperbot", "display_name": "Helper"},
        expect=201,
    )
    token = await api.call(
        "POST",
        f"/users/{bot['user_id']}/tokens",
        token=admin.token,
        json={"description": "bot token"},
        expect=201,
    )
    me = await api.call("GET", "/users/me", token=token["token"])
    assert me["id"] == bot["user_id"] and me["is_bot"] is True
    await api.call(
        "POST", "/users/tokens/revoke", token=admin.token, json={"token_id": token["id"]}
    )
    await api.call("GET", "/users/me", token=token["token"], expect=401)


async def test_users_cannot_patch_each_other(api: API, admin: User) -> None:
    a = await api.new_user(admin.token)
    b = await api.new_user(admin.token)
    body = await api.call(
        "PUT", f"/users/{b.id}/patch", token=a.token, json={"nickname": "x"}, expect=403
    )
    assert body["id"] == "api.context.permissions.app_error"
