"""AppErrors rendered in one place: the exception handlers, the API middleware and the
websocket endpoint's refusals send the same body and headers, and clear the session cookie
under the same rule (a route that needs a session got a token it does not accept)."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from hubbub.api.auth import require_session
from hubbub.api.errors import CLEAR_SESSION_COOKIE, error_response, render_error, send_error
from hubbub.api.middleware import APIMiddleware
from hubbub.errors import AppError, render_body
from hubbub.realtime.protocol import error_reply
from hubbub.services.auth import AuthService
from hubbub.services.session import Session

GOOD = "g" * 26
SESSION = Session("s" * 26, GOOD, "u" * 26, "system_user", "csrf", 0)


class Auth:
    """What the middleware asks of AuthService: one valid token."""

    async def resolve(self, token: str) -> Session | None:
        return SESSION if token == GOOD else None


def http_scope(headers: dict[str, str], method: str = "GET") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": "/api/v4/users/me",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


async def through_middleware(scope: Scope, app: Any) -> tuple[list[Message], AppError]:
    """Runs `app` behind APIMiddleware, which renders what it raises; returns the messages
    sent and the error raised."""
    raised: list[AppError] = []

    async def recording_app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except AppError as exc:
            raised.append(exc)
            raise

    middleware = APIMiddleware(
        recording_app,
        auth=cast(AuthService, Auth()),
        version_id="v1",
        max_body=1000,
        max_upload=1000,
        strict_csrf=False,
        developer=False,
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    assert len(raised) == 1
    return sent, raised[0]


async def needs_session(scope: Scope, receive: Receive, send: Send) -> None:
    require_session(HTTPConnection(scope))


async def refuses_otherwise(scope: Scope, receive: Receive, send: Send) -> None:
    require_session(HTTPConnection(scope))
    raise AppError("api.user.delete_team.not_enabled.app_error", "Not enabled.", 401)


def cookies_set(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [v for k, v in headers if k == b"set-cookie"]


@pytest.mark.parametrize(
    ("headers", "app", "cleared"),
    [
        ({"Cookie": "MMAUTHTOKEN=" + "x" * 26}, needs_session, True),  # a rejected cookie
        ({"Authorization": "Bearer " + "x" * 26}, needs_session, True),  # as Mattermost: any token
        ({}, needs_session, False),  # no token: nothing to clear
        ({"Cookie": "MMAUTHTOKEN=" + GOOD}, refuses_otherwise, False),  # a 401 of another cause
        ({"Authorization": "Bearer " + GOOD}, refuses_otherwise, False),
    ],
)
async def test_middleware_and_handlers_render_a_401_alike(
    headers: dict[str, str], app: Any, cleared: bool
) -> None:
    scope = http_scope(headers)
    sent, error = await through_middleware(scope, app)
    start, body = sent
    assert start["type"] == "http.response.start" and start["status"] == 401
    assert body["body"] == render_body(error, scope["hubbub.request_id"])
    assert orjson.loads(body["body"])["request_id"] == scope["hubbub.request_id"]
    # The exception handlers' response for the same request is the same, headers included.
    response = error_response(error, scope, developer=False)
    assert response.status_code == 401 and response.body == body["body"]
    assert start["headers"][: len(response.raw_headers)] == response.raw_headers
    assert (b"content-type", b"application/json") in response.raw_headers
    assert cookies_set(response.raw_headers) == ([CLEAR_SESSION_COOKIE] if cleared else [])
    assert dict(start["headers"])[b"x-version-id"] == b"v1"


async def test_a_refused_csrf_check_is_the_requests_auth_error() -> None:
    # A cookie session writing without the CSRF token or the XHR header: hubbub's auth refuses
    # the session, and the same rule answers (the cookie is cleared).
    scope = http_scope({"Cookie": "MMAUTHTOKEN=" + GOOD}, method="POST")
    sent, error = await through_middleware(scope, needs_session)
    assert error is scope["hubbub.auth_error"]
    assert cookies_set(sent[0]["headers"]) == [CLEAR_SESSION_COOKIE]


def test_developer_mode_alone_shows_the_detailed_error() -> None:
    error = AppError("api.x.app_error", "Broke.", 500, detailed_error="inner")
    scope: Scope = {"type": "http", "hubbub.request_id": "r" * 26}
    assert orjson.loads(render_error(error, scope, developer=False).body)["detailed_error"] == ""
    shown = orjson.loads(render_error(error, scope, developer=True).body)
    assert shown == {
        "id": "api.x.app_error",
        "message": "Broke.",
        "detailed_error": "inner",
        "request_id": "r" * 26,
        "status_code": 500,
    }


async def test_websocket_refusal_is_the_same_body_as_a_denial_response() -> None:
    error = AppError("api.web_socket.connect.draining.app_error", "Not accepting.", 503)
    scope: Scope = {"type": "websocket"}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await send_error(send, render_error(error, scope, developer=False), websocket=True)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 503 and (b"content-type", b"application/json") in sent[0]["headers"]
    assert sent[1]["body"] == render_body(error)


def test_websocket_error_reply_embeds_the_same_body() -> None:
    error = AppError("api.web_socket_router.bad_seq.app_error", "Bad seq.", 400)
    error.params["seq_reply"] = 4
    frame = error_reply(error)
    assert frame == b'{"status":"FAIL","error":' + render_body(error) + b',"seq_reply":4}'
