"""Password policy (`PasswordSettings`) at sign-up, change and reset, with Mattermost's error
ids; `PUT /users/{id}/password` (the current password for oneself, none for a system admin);
the reset token flow (`hubbub user reset-token`, then `POST /users/password/reset`)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from hubbub.app import Hubbub
from hubbub.store.tables import tokens
from tests.support.api import API, PASSWORD, User

STRONG = "Str0ng!pass"


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {
        "MM_PASSWORDSETTINGS_MINIMUMLENGTH": "10",
        "MM_PASSWORDSETTINGS_UPPERCASE": "true",
        "MM_PASSWORDSETTINGS_NUMBER": "true",
        "MM_PASSWORDSETTINGS_SYMBOL": "true",
    }


async def _sign_up(api: API, admin_token: str | None, name: str, password: str) -> httpx.Response:
    return await api.raw(
        "POST",
        "/users",
        admin_token,
        json={"email": f"{name}@example.com", "username": name, "password": password},
    )


async def _login(api: API, name: str, password: str) -> httpx.Response:
    return await api.client.post(
        "/api/v4/users/login", json={"login_id": name, "password": password}
    )


async def _strong_user(api: API, admin: User, name: str) -> User:
    resp = await _sign_up(api, admin.token, name, STRONG)
    assert resp.status_code == 201, resp.text
    login = await _login(api, name, STRONG)
    assert login.status_code == 200, login.text
    return User(resp.json()["id"], name, login.headers["token"], resp.json())


@pytest.fixture
async def admin(api: API) -> User:
    resp = await _sign_up(api, None, "boss", STRONG)
    assert resp.status_code == 201, resp.text
    login = await _login(api, "boss", STRONG)
    return User(resp.json()["id"], "boss", login.headers["token"], resp.json())


@pytest.mark.parametrize(
    "password", [PASSWORD, "short1!A", "nouppercase1!", "NoNumbers!!", "NoSymbols123"]
)
async def test_sign_up_with_a_weak_password_is_refused(
    api: API, admin: User, password: str
) -> None:
    resp = await _sign_up(api, admin.token, "weakling", password)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["id"] == "model.user.is_valid.pwd_uppercase_number_symbol.app_error"
    assert "between 10 and 72 characters" in body["message"]


async def test_change_own_password_needs_the_current_one(api: API, admin: User) -> None:
    user = await _strong_user(api, admin, "changer")
    path = f"/users/{user.id}/password"
    body = await api.call("PUT", path, user.token, {"new_password": "N3w!password"}, 400)
    assert body["id"] == "api.context.invalid_body_param.app_error"
    body = await api.call(
        "PUT", path, user.token, {"current_password": "Wr0ng!pass", "new_password": "N3w!pass"}, 400
    )
    assert body["id"] == "api.user.update_password.incorrect.app_error"
    body = await api.call(
        "PUT", path, user.token, {"current_password": STRONG, "new_password": "weak"}, 400
    )
    assert body["id"] == "model.user.is_valid.pwd_uppercase_number_symbol.app_error"
    assert (await _login(api, "changer", STRONG)).status_code == 200


async def test_change_own_password_ends_the_other_sessions(api: API, admin: User) -> None:
    user = await _strong_user(api, admin, "mover")
    other = (await _login(api, "mover", STRONG)).headers["token"]
    await api.call(
        "PUT",
        f"/users/{user.id}/password",
        user.token,
        {"current_password": STRONG, "new_password": "An0ther!one"},
    )
    await api.call("GET", "/users/me", user.token)  # the session that changed it goes on
    await api.call("GET", "/users/me", other, expect=401)
    assert (await _login(api, "mover", STRONG)).status_code == 401
    assert (await _login(api, "mover", "An0ther!one")).status_code == 200
    me = await api.call("GET", "/users/me", user.token)
    assert me["last_password_update"] >= user.data["last_password_update"]


async def test_admin_sets_a_password_without_the_current_one(api: API, admin: User) -> None:
    user = await _strong_user(api, admin, "forgetful")
    await api.call("PUT", f"/users/{user.id}/password", admin.token, {"new_password": "Adm1n!set1"})
    await api.call("GET", "/users/me", user.token, expect=401)  # all of the user's sessions end
    assert (await _login(api, "forgetful", "Adm1n!set1")).status_code == 200


async def test_others_cannot_set_someones_password(api: API, admin: User) -> None:
    user = await _strong_user(api, admin, "victim")
    mallory = await _strong_user(api, admin, "mallory")
    body = await api.call(
        "PUT",
        f"/users/{user.id}/password",
        mallory.token,
        {"current_password": STRONG, "new_password": "Pwn3d!pass"},
        403,
    )
    assert body["id"] == "api.context.permissions.app_error"
    assert (await _login(api, "victim", STRONG)).status_code == 200


async def test_reset_with_a_token(api: API, node: Hubbub, admin: User) -> None:
    user = await _strong_user(api, admin, "resetter")
    issued = await node.password_resets.issue(user.id)
    token = str(issued["token"])
    assert len(token) == 64
    body = await api.call(
        "POST", "/users/password/reset", json={"token": token, "new_password": "weak"}, expect=400
    )
    assert body["id"] == "model.user.is_valid.pwd_uppercase_number_symbol.app_error"
    await api.call(
        "POST", "/users/password/reset", json={"token": token, "new_password": "R3set!pass"}
    )
    assert (await _login(api, "resetter", "R3set!pass")).status_code == 200
    await api.call("GET", "/users/me", user.token, expect=401)  # old sessions end
    body = await api.call(
        "POST",
        "/users/password/reset",
        json={"token": token, "new_password": "Ag4in!pass"},
        expect=400,
    )
    assert body["id"] == "api.user.reset_password.invalid_link.app_error"  # used once


async def test_reset_token_expires_after_an_hour(api: API, node: Hubbub, admin: User) -> None:
    user = await _strong_user(api, admin, "latecomer")
    token = str((await node.password_resets.issue(user.id))["token"])
    async with node.db.write() as conn:
        await conn.execute(
            update(tokens)
            .where(tokens.c.token == token)
            .values(create_at=tokens.c.create_at - 3_600_000)
        )
    body = await api.call(
        "POST",
        "/users/password/reset",
        json={"token": token, "new_password": "L4te!pass1"},
        expect=400,
    )
    assert body["id"] == "api.user.reset_password.link_expired.app_error"
    assert (await _login(api, "latecomer", STRONG)).status_code == 200


@pytest.mark.parametrize("token", ["", "x" * 63, "y" * 64])
async def test_reset_with_a_bad_token(api: API, token: str) -> None:
    body = await api.call(
        "POST",
        "/users/password/reset",
        json={"token": token, "new_password": "Wh4tever!x"},
        expect=400,
    )
    assert body["id"] in {
        "api.context.invalid_body_param.app_error",
        "api.user.reset_password.invalid_link.app_error",
    }
