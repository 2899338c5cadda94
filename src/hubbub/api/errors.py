"""Every AppError leaves the HTTP API here: Mattermost's AppError body (`render_body`) with
exactly `application/json`, and the session cookie cleared where Mattermost clears it.

`render_error` builds the response once; the exception handlers (`make_handlers`), the API
middleware (errors raised before a response started) and the websocket endpoint (refused
upgrades) all send what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler, Scope, Send

from hubbub.api.http import JSON_TYPE
from hubbub.errors import AppError, render_body, server_busy
from hubbub.store.db import DatabaseBusy

log = logging.getLogger("hubbub.api")

# Go writes Mattermost's `MaxAge: -1` as `Max-Age=0`.
CLEAR_SESSION_COOKIE = b"MMAUTHTOKEN=; Max-Age=0; Path=/; HttpOnly"


@dataclass(frozen=True, slots=True)
class RenderedError:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def clears_session_cookie(error: AppError, scope: Scope) -> bool:
    """Mattermost clears the session cookie when a route that needs a session gets a token,
    from the cookie or a header, that it does not accept (`web/handlers.go`): here, when the
    error is the request's own authentication error (`scope["hubbub.auth_error"]`, which
    `require_session` raises). Not for a request without a token, nor for a 401 of any other
    cause (wrong password at login, a refused permanent delete), nor for routes that merely
    accept a session."""
    return error.status_code == 401 and error is scope.get("hubbub.auth_error")


def render_error(error: AppError, scope: Scope, developer: bool) -> RenderedError:
    body = render_body(error, scope.get("hubbub.request_id", ""), developer)
    headers = [
        (b"content-type", JSON_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if clears_session_cookie(error, scope):
        headers.append((b"set-cookie", CLEAR_SESSION_COOKIE))
    if error.retry_after:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    return RenderedError(error.status_code, headers, body)


def error_response(error: AppError, scope: Scope, developer: bool) -> Response:
    rendered = render_error(error, scope, developer)
    response = Response(rendered.body, rendered.status)
    response.raw_headers = list(rendered.headers)
    return response


async def send_error(
    send: Send,
    rendered: RenderedError,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    *,
    websocket: bool = False,
) -> None:
    """Sends a rendered error on a raw ASGI channel; `websocket`: as the refusal of an upgrade
    (the ASGI websocket denial response)."""
    kind = "websocket.http" if websocket else "http"
    headers = rendered.headers + (extra_headers or [])
    await send({"type": f"{kind}.response.start", "status": rendered.status, "headers": headers})
    await send({"type": f"{kind}.response.body", "body": rendered.body})


def make_handlers(developer: bool) -> dict[Any, ExceptionHandler]:
    def render(request: Request, error: AppError) -> Response:
        return error_response(error, request.scope, developer)

    async def app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return render(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error = AppError("api.context.404.app_error", "Sorry, we could not find the page.", 404)
        elif exc.status_code == 405:
            error = AppError(
                "api.context.405.app_error", "The method is not allowed for this URL.", 405
            )
        else:
            error = AppError("api.context.http_error.app_error", str(exc.detail), exc.status_code)
        return render(request, error)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return render(
            request,
            AppError(
                "api.context.server_error.app_error",
                "An internal server error occurred.",
                500,
                detailed_error=repr(exc),
            ),
        )

    async def database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        if isinstance(exc, DataError) or sqlstate.startswith("22"):
            # SQLSTATE class 22, "data exception": a value from the request that the database
            # cannot hold, such as a NUL character in text on PostgreSQL or an out-of-range number.
            return render(
                request,
                AppError(
                    "api.context.invalid_param.app_error",
                    "The request contains a value that cannot be stored "
                    "(for example a NUL character or a number out of range).",
                    400,
                    detailed_error=str(exc.orig),
                ),
            )
        return await server_error(request, exc)

    async def busy(request: Request, exc: Exception) -> Response:
        return render(request, server_busy())

    return {
        AppError: app_error,
        DatabaseBusy: busy,
        HTTPException: http_error,
        DBAPIError: database_error,
        Exception: server_error,
    }
