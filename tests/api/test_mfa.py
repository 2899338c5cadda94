"""Multi-factor authentication as Mattermost's: enrolment (`mfa/generate`, `PUT mfa`), login
with `token`, no replay of a used code, `POST /users/mfa`, the user's `mfa_active`, and
`EnforceMultifactorAuthentication`.

Codes are computed from the secret the server hands out, at the current time. A test never
depends on which 30-second step the server is in: it uses only codes of the test's current step
and the next one, which the server accepts whether or not a step boundary passes meanwhile (its
window is one step either side)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from hubbub.services import totp
from tests.support.api import API, PASSWORD, User


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"MM_SERVICESETTINGS_ENABLEMULTIFACTORAUTHENTICATION": "true"}


def _codes(secret: str) -> tuple[str, str]:
    """The codes of this step and the next one."""
    now = time.time()
    return totp.code_at(secret, now), totp.code_at(secret, now + totp.STEP_SECONDS)


def _wrong_code(secret: str) -> str:
    now = time.time()
    valid = {totp.code_at(secret, now + k * totp.STEP_SECONDS) for k in range(-2, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


async def _login(api: API, user: User, token: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"login_id": user.username, "password": PASSWORD}
    if token is not None:
        body["token"] = token
    return await api.client.post("/api/v4/users/login", json=body)


async def _enrol(api: API, user: User) -> tuple[str, str]:
    """Generates a secret and activates MFA with this step's code; the next step's code, still
    unused, is returned with the secret."""
    secret = (await api.call("POST", f"/users/{user.id}/mfa/generate", user.token))["secret"]
    now_code, next_code = _codes(secret)
    await api.call("PUT", f"/users/{user.id}/mfa", user.token, {"activate": True, "code": now_code})
    return secret, next_code


async def test_generate_returns_a_secret_and_a_qr_png(api: API, admin: User) -> None:
    resp = await api.raw("POST", f"/users/{admin.id}/mfa/generate", admin.token)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-cache"
    body = resp.json()
    assert set(body) == {"secret", "qr_code"}
    assert len(base64.b32decode(body["secret"] + "=" * (-len(body["secret"]) % 8))) == 20
    image = Image.open(io.BytesIO(base64.b64decode(body["qr_code"])))
    assert image.format == "PNG" and image.size[0] == image.size[1] >= 100
    me = await api.call("GET", "/users/me", admin.token)
    assert "mfa_active" not in me and "mfa_secret" not in me  # not active yet; never the secret


async def test_enrol_then_login_needs_a_code_and_a_code_works_once(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    secret, next_code = await _enrol(api, user)
    me = await api.call("GET", "/users/me", user.token)
    assert me["mfa_active"] is True and "mfa_secret" not in me
    assert (await api.call("POST", "/users/mfa", json={"login_id": user.username})) == {
        "mfa_required": True
    }

    resp = await _login(api, user)  # the clients' pre-flight: no token at all
    assert resp.status_code == 401
    assert resp.json()["id"] == "mfa.validate_token.authenticate.app_error"
    assert "token" not in resp.headers
    resp = await _login(api, user, _wrong_code(secret))
    assert resp.status_code == 401
    assert resp.json()["id"] == "api.user.check_user_mfa.bad_code.app_error"

    resp = await _login(api, user, next_code)
    assert resp.status_code == 200, resp.text
    assert resp.headers["token"]
    replayed = await _login(api, user, next_code)
    assert replayed.status_code == 401
    assert replayed.json()["id"] == "api.user.check_user_mfa.bad_code.app_error"


async def test_one_code_raced_by_many_logins_opens_one_session(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    _, next_code = await _enrol(api, user)
    answers = await asyncio.gather(*(_login(api, user, next_code) for _ in range(8)))
    assert sorted(r.status_code for r in answers) == [200] + [401] * 7, [r.text for r in answers]


async def test_the_activation_code_cannot_log_in(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    secret = (await api.call("POST", f"/users/{user.id}/mfa/generate", user.token))["secret"]
    code, _ = _codes(secret)
    await api.call("PUT", f"/users/{user.id}/mfa", user.token, {"activate": True, "code": code})
    resp = await _login(api, user, code)
    assert resp.status_code == 401, resp.text


async def test_wrong_code_counts_as_a_failed_attempt(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    secret, next_code = await _enrol(api, user)
    for _ in range(10):  # MaximumLoginAttempts
        assert (await _login(api, user, _wrong_code(secret))).status_code == 401
    resp = await _login(api, user, next_code)
    assert resp.json()["id"] == "api.user.check_user_login_attempts.too_many.app_error"


async def test_activation_needs_a_valid_code(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    path = f"/users/{user.id}/mfa"
    body = await api.call("PUT", path, user.token, {"activate": True, "code": "123456"}, 401)
    assert body["id"] == "mfa.activate.bad_token.app_error"  # no secret generated yet
    secret = (await api.call("POST", f"{path}/generate", user.token))["secret"]
    body = await api.call(
        "PUT", path, user.token, {"activate": True, "code": _wrong_code(secret)}, 401
    )
    assert body["id"] == "mfa.activate.bad_token.app_error"
    for bad in [{}, {"activate": "yes"}, {"activate": True}, {"activate": True, "code": ""}]:
        body = await api.call("PUT", path, user.token, bad, 400)
        assert body["id"] == "api.context.invalid_body_param.app_error"
    assert "mfa_active" not in await api.call("GET", "/users/me", user.token)


async def test_deactivate_and_other_users(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    await api.call("POST", f"/users/{user.id}/mfa/generate", other.token, expect=403)
    await api.call("PUT", f"/users/{user.id}/mfa", other.token, {"activate": False}, 403)
    await _enrol(api, user)
    body = await api.call("POST", f"/users/{user.id}/mfa/generate", user.token, expect=400)
    assert body["id"] == "mfa.generate_qr_code.active.app_error"  # never swap a live secret
    # A system admin may turn it off for someone who lost their phone.
    await api.call("PUT", f"/users/{user.id}/mfa", admin.token, {"activate": False})
    assert "mfa_active" not in await api.call("GET", f"/users/{user.id}", admin.token)
    assert (await _login(api, user)).status_code == 200


class TestDisabled:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {}

    async def test_endpoints_answer_not_implemented(self, api: API, admin: User) -> None:
        body = await api.call("POST", f"/users/{admin.id}/mfa/generate", admin.token, expect=501)
        assert body["id"] == "mfa.mfa_disabled.app_error"
        body = await api.call(
            "PUT", f"/users/{admin.id}/mfa", admin.token, {"activate": True, "code": "1"}, 501
        )
        assert body["id"] == "mfa.mfa_disabled.app_error"
        assert await api.call("POST", "/users/mfa", json={"login_id": admin.username}) == {
            "mfa_required": False
        }


class TestEnforced:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {
            "MM_SERVICESETTINGS_ENABLEMULTIFACTORAUTHENTICATION": "true",
            "MM_SERVICESETTINGS_ENFORCEMULTIFACTORAUTHENTICATION": "true",
        }

    async def test_without_mfa_only_the_set_up_calls_are_allowed(
        self, api: API, admin: User
    ) -> None:
        await _enrol(api, admin)  # to create the user below
        user = await api.new_user(admin.token)
        body = await api.call("GET", "/teams", user.token, expect=403)
        assert body["id"] == "api.context.mfa_required.app_error"
        await api.call("GET", f"/users/{user.id}", user.token, expect=403)
        await api.call("PUT", "/users/me/patch", user.token, {"nickname": "x"}, 403)
        assert (await api.call("GET", "/users/me", user.token))["id"] == user.id
        await _enrol(api, user)
        # The same session may go on at once: the MFA state is not served from a stale cache.
        await api.call("GET", "/teams", user.token)
        await api.call("GET", f"/users/{user.id}", user.token)

    async def test_bots_are_exempt(self, api: API, admin: User) -> None:
        await _enrol(api, admin)
        bot = await api.call("POST", "/bots", admin.token, {"username": "enforcebot"}, expect=201)
        token = await api.call(
            "POST", f"/users/{bot['user_id']}/tokens", admin.token, {"description": "b"}, 201
        )
        await api.call("GET", "/teams", token["token"])

    async def test_an_admin_without_mfa_cannot_create_users(self, api: API, admin: User) -> None:
        body = await api.call(
            "POST",
            "/users",
            admin.token,
            {"email": "e1@example.com", "username": "enforced1", "password": PASSWORD},
            expect=403,
        )
        # Treated as anonymous: no open server for a sign-up.
        assert body["id"] == "api.user.create_user.no_open_server"
