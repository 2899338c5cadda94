"""The one client-facing error type, rendered as Mattermost's AppError body in one place
(`render_body`, pure: the websocket protocol uses it too; the HTTP response around it, with the
session cookie rule, is `hubbub.api.errors.render_error`)."""

from __future__ import annotations

from typing import Any

import orjson


class AppError(Exception):
    """An error a client sees: a stable id, a human message and an HTTP status."""

    def __init__(
        self,
        error_id: str,
        message: str,
        status_code: int = 400,
        detailed_error: str = "",
        params: dict[str, Any] | None = None,
        *,
        retry_after: int = 0,
    ) -> None:
        super().__init__(f"{error_id}: {message}")
        self.retry_after = retry_after  # seconds, sent as Retry-After when set
        self.id = error_id
        self.message = message
        self.status_code = status_code
        self.detailed_error = detailed_error
        self.params = params or {}

    def to_body(self, request_id: str, developer: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "message": self.message,
            "detailed_error": self.detailed_error if developer else "",
            "request_id": request_id,
            "status_code": self.status_code,
        }


def render_body(error: AppError, request_id: str = "", developer: bool = False) -> bytes:
    """The JSON body of `error`, as clients get it over HTTP and inside websocket replies; the
    detailed error only in developer mode (`ServiceSettings.EnableDeveloper`)."""
    return orjson.dumps(error.to_body(request_id, developer))


def server_busy() -> AppError:
    """An overloaded node refusing new work at once, rather than answering it seconds late."""
    return AppError(
        "api.context.server_busy.app_error",
        "The server is busy. Please try again shortly.",
        503,
        retry_after=1,
    )


def bad_param(name: str, where: str = "api.context.invalid_param") -> AppError:
    return AppError(f"{where}.app_error", f"Invalid or missing {name} parameter.", 400)


def bad_body(name: str) -> AppError:
    return AppError(
        "api.context.invalid_body_param.app_error",
        f"Invalid or missing {name} in request body.",
        400,
    )


def not_found(what: str, error_id: str | None = None) -> AppError:
    return AppError(
        error_id or "app.context.not_found.app_error", f"Unable to find the {what}.", 404
    )


def forbidden(permission: str = "") -> AppError:
    detail = f" Required permission: {permission}." if permission else ""
    return AppError(
        "api.context.permissions.app_error",
        "You do not have the appropriate permissions." + detail,
        403,
    )


def unauthorized() -> AppError:
    return AppError(
        "api.context.session_expired.app_error",
        "Invalid or expired session, please login again.",
        401,
    )
