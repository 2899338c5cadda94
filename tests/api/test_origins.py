"""Origins and CORS over HTTP (hubbub/api/origins.py): a state-changing request that carries the
session cookie is refused from another site's page, token clients are not, and with
`ServiceSettings.AllowCorsFrom` the listed origins get CORS answers as rs/cors gives them for
Mattermost. The websocket half is tests/realtime/test_cross_origin.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import API, User

EVIL = "http://evil.example"
TRUSTED = "https://trusted.example"
OWN = "http://hubbub.test"  # the in-process client's base URL, so the requests' Host


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {
        "MM_SERVICESETTINGS_ALLOWCORSFROM": f"{TRUSTED} https://*.partner.example",
        "MM_SERVICESETTINGS_CORSEXPOSEDHEADERS": "X-Request-Id X-Version-Id",
        "MM_SERVICESETTINGS_CORSALLOWCREDENTIALS": "true",
    }


async def _cookie_session(api: API, user: User) -> dict[str, str]:
    """A browser's cookie session for `user`: the cookie and the CSRF header its page sends."""
    resp = await api.client.post(
        "/api/v4/users/login",
        json={"login_id": user.username, "password": "password-123"},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    assert resp.status_code == 200, resp.text
    api.client.cookies.clear()  # each request below says exactly which cookie it carries
    return {
        "Cookie": f"MMAUTHTOKEN={resp.cookies['MMAUTHTOKEN']}",
        "X-CSRF-Token": resp.cookies["MMCSRF"],
        "X-Requested-With": "XMLHttpRequest",
    }


async def _patch_nickname(
    api: API, user: User, headers: dict[str, str], nickname: str
) -> httpx.Response:
    return await api.client.put(
        f"/api/v4/users/{user.id}/patch", json={"nickname": nickname}, headers=headers
    )


async def _nickname(api: API, admin: User, user: User) -> Any:
    return (await api.call("GET", f"/users/{user.id}", admin.token))["nickname"]


async def test_cookie_request_from_another_site_is_refused_without_effect(
    api: API, admin: User
) -> None:
    victim = await api.new_user(admin.token)
    browser = await _cookie_session(api, victim)
    resp = await _patch_nickname(api, victim, {**browser, "Origin": EVIL}, "pwned")
    assert resp.status_code == 403, resp.text
    assert resp.json()["id"] == "api.context.cross_origin.app_error"
    assert resp.headers["content-type"] == "application/json"
    assert await _nickname(api, admin, victim) == ""
    resp = await _patch_nickname(api, victim, {**browser, "Origin": "null"}, "pwned")
    assert resp.status_code == 403, resp.text
    assert await _nickname(api, admin, victim) == ""


@pytest.mark.parametrize("origin", [OWN, TRUSTED, "https://chat.partner.example", None], ids=str)
async def test_cookie_request_from_a_trusted_origin_or_none_passes(
    api: API, admin: User, origin: str | None
) -> None:
    user = await api.new_user(admin.token)
    headers = await _cookie_session(api, user)
    if origin is not None:
        headers["Origin"] = origin
    resp = await _patch_nickname(api, user, headers, "ok")
    assert resp.status_code == 200, resp.text
    assert await _nickname(api, admin, user) == "ok"


async def test_token_clients_are_unaffected_by_origin(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    headers = {"Authorization": f"Bearer {user.token}", "Origin": EVIL}
    resp = await _patch_nickname(api, user, headers, "bot")
    assert resp.status_code == 200, resp.text


async def test_reads_with_the_cookie_are_not_refused_but_get_no_cors_grant(
    api: API, admin: User
) -> None:
    user = await api.new_user(admin.token)
    headers = {**await _cookie_session(api, user), "Origin": EVIL}
    resp = await api.client.get("/api/v4/users/me", headers=headers)
    # The browser gets the answer but, without Access-Control-Allow-Origin, the page cannot read it.
    assert resp.status_code == 200
    assert "access-control-allow-origin" not in resp.headers
    assert resp.headers.get("vary") == "Origin"


async def test_preflight_from_an_allowed_origin(api: API) -> None:
    resp = await api.client.options(
        "/api/v4/users/me/patch",
        headers={
            "Origin": TRUSTED,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type, x-csrf-token",
        },
    )
    assert resp.status_code == 204
    assert resp.headers["access-control-allow-origin"] == TRUSTED
    assert resp.headers["access-control-allow-methods"] == "PUT"
    assert resp.headers["access-control-allow-headers"] == "content-type, x-csrf-token"
    assert resp.headers["access-control-allow-credentials"] == "true"
    assert resp.headers["access-control-max-age"] == "86400"
    assert resp.headers.get_list("vary") == [
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
    ]


@pytest.mark.parametrize(
    ("origin", "method"),
    [(EVIL, "PUT"), ("https://partner.example", "PUT"), (TRUSTED, "TRACE"), ("", "PUT")],
)
async def test_preflight_refused_carries_no_grant(api: API, origin: str, method: str) -> None:
    headers = {"Access-Control-Request-Method": method}
    if origin:
        headers["Origin"] = origin
    resp = await api.client.options("/api/v4/users/me/patch", headers=headers)
    assert resp.status_code == 204
    assert not [h for h in resp.headers if h.startswith("access-control-")], resp.headers


async def test_actual_cross_origin_request_gets_cors_headers(api: API, admin: User) -> None:
    resp = await api.client.get(
        "/api/v4/users/me", headers={"Authorization": f"Bearer {admin.token}", "Origin": TRUSTED}
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == TRUSTED
    assert resp.headers["access-control-allow-credentials"] == "true"
    assert resp.headers["access-control-expose-headers"] == "X-Request-Id, X-Version-Id"


class TestWithoutCors:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {}

    async def test_no_cors_headers_and_no_preflight(self, api: API, admin: User) -> None:
        resp = await api.client.options(
            "/api/v4/users/me",
            headers={"Origin": TRUSTED, "Access-Control-Request-Method": "GET"},
        )
        assert resp.status_code == 405  # not answered as a preflight: no route for OPTIONS
        assert "access-control-allow-origin" not in resp.headers
        resp = await api.client.get(
            "/api/v4/users/me",
            headers={"Authorization": f"Bearer {admin.token}", "Origin": TRUSTED},
        )
        assert "access-control-allow-origin" not in resp.headers

    async def test_only_the_own_host_is_trusted(self, api: API, admin: User) -> None:
        user = await api.new_user(admin.token)
        browser = await _cookie_session(api, user)
        resp = await _patch_nickname(api, user, {**browser, "Origin": TRUSTED}, "x")
        assert resp.status_code == 403
        resp = await _patch_nickname(api, user, {**browser, "Origin": OWN}, "y")
        assert resp.status_code == 200, resp.text


class TestWithSiteURL:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {"MM_SERVICESETTINGS_SITEURL": "https://chat.example.com/"}

    async def test_site_url_is_the_own_origin(self, api: API, admin: User) -> None:
        user = await api.new_user(admin.token)
        browser = await _cookie_session(api, user)
        for origin, status in [
            ("https://chat.example.com", 200),
            ("http://chat.example.com", 403),  # the scheme counts when SiteURL says it
            (OWN, 403),  # the Host the request was sent to no longer does
        ]:
            resp = await _patch_nickname(api, user, {**browser, "Origin": origin}, "z")
            assert resp.status_code == status, (origin, resp.text)


class TestAnyOrigin:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {"MM_SERVICESETTINGS_ALLOWCORSFROM": "*"}

    async def test_star_allows_every_origin_without_credentials(
        self, api: API, admin: User
    ) -> None:
        resp = await api.client.get(
            "/api/v4/users/me", headers={"Authorization": f"Bearer {admin.token}", "Origin": EVIL}
        )
        assert resp.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in resp.headers
        user = await api.new_user(admin.token)
        browser = await _cookie_session(api, user)
        resp = await _patch_nickname(api, user, {**browser, "Origin": EVIL}, "star")
        assert resp.status_code == 200, resp.text
