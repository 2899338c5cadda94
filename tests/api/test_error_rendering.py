"""The session cookie is cleared where Mattermost clears it: a route that needs a session got a
token (cookie or header) that is not a session. Not without a token, not for other 401s, not
on routes that merely accept a session."""

from __future__ import annotations

import httpx

from hubbub.ids import new_id
from tests.support.api import API, PASSWORD, User


def clears_cookie(resp: httpx.Response) -> bool:
    return any(
        value.startswith("MMAUTHTOKEN=;") and "Max-Age=0" in value
        for value in resp.headers.get_list("set-cookie")
    )


async def test_a_rejected_token_clears_the_cookie(api: API) -> None:
    for headers in ({"Cookie": f"MMAUTHTOKEN={new_id()}"}, {"Authorization": f"Bearer {new_id()}"}):
        resp = await api.raw("GET", "/users/me", headers=headers)
        assert resp.status_code == 401 and resp.headers["content-type"] == "application/json"
        assert resp.json()["id"] == "api.context.session_expired.app_error"
        assert clears_cookie(resp), headers
        api.client.cookies.clear()


async def test_no_token_and_other_401s_leave_the_cookie(api: API, admin: User) -> None:
    anonymous = await api.raw("GET", "/users/me")
    assert anonymous.status_code == 401 and not clears_cookie(anonymous)
    team = await api.new_team(admin.token)
    refused = await api.raw("DELETE", f"/teams/{team['id']}?permanent=true", token=admin.token)
    assert refused.status_code == 401 and not clears_cookie(refused)
    # Login accepts a session but does not need one: a stale cookie is not its business.
    wrong = await api.raw(
        "POST",
        "/users/login",
        json={"login_id": admin.username, "password": PASSWORD + "x"},
        headers={"Cookie": f"MMAUTHTOKEN={new_id()}"},
    )
    assert wrong.status_code == 401 and not clears_cookie(wrong)
