"""Exception handlers: every failure leaves as an AppError body with exactly application/json."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hubbub.api.http import JSONResponse
from hubbub.errors import AppError

log = logging.getLogger("hubbub.api")


def make_handlers(developer: bool) -> dict[type[Exception] | int, object]:
    def render(request: Request, error: AppError) -> Response:
        body = error.to_body(request.scope.get("hubbub.request_id", ""), developer)
        headers = {}
        if error.status_code == 401 and request.cookies.get("MMAUTHTOKEN"):
            headers["set-cookie"] = "MMAUTHTOKEN=; Max-Age=0; Path=/; HttpOnly"
        return JSONResponse(body, error.status_code, headers)

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

    return {
        AppError: app_error,
        HTTPException: http_error,
        DBAPIError: database_error,
        Exception: server_error,
    }
