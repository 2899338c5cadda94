"""The ASGI layer every API request passes: request id, common headers, body limit, session,
and the AppError answer (`hubbub.api.errors.render_error`) for what fails before a response
started.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.api.auth import resolve_session
from hubbub.api.errors import render_error, send_error
from hubbub.api.mfa import mfa_required_error, must_set_up_mfa
from hubbub.errors import AppError, server_busy
from hubbub.ids import new_request_id
from hubbub.services.auth import AuthService
from hubbub.store.consistency import PositionStore, ReadContext, reading_as
from hubbub.store.db import DatabaseBusy

log = logging.getLogger("hubbub.api")

# Paths whose bodies are bounded by FileSettings.MaxFileSize instead of MaximumPayloadSizeBytes:
# file uploads, a new custom emoji, a profile picture (their routes apply their own limits).
UPLOAD_PATHS = ("/api/v4/files",)
_UPLOAD_PATH = re.compile(r"^/api/v4/(emoji|users/[^/]+/image)$")

_REPEATED_SLASHES = re.compile(r"/{2,}")


# On every answer, unless the route set its own: no type sniffing, no referrer leaving the site,
# and framing only by this site's own pages (pages, files and the console set stricter ones).
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
)


_SECURITY_NAMES = frozenset(name for name, _ in _SECURITY_HEADERS)


def security_headers(present: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The security headers `present` (a response's headers, lower-case names) lacks."""
    names = {lowered for name, _ in present if (lowered := name.lower()) in _SECURITY_NAMES}
    if not names:  # most answers: none of them set by the route
        return list(_SECURITY_HEADERS)
    return [(name, value) for name, value in _SECURITY_HEADERS if name not in names]


class _TooLarge(AppError):
    def __init__(self, limit: int, upload: bool = False) -> None:
        super().__init__(
            "api.file.upload_file.too_large_detailed.app_error"
            if upload
            else "api.context.request_body_too_large.app_error",
            f"The request body is larger than the limit of {limit} bytes.",
            413,
        )


class APIMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: AuthService,
        version_id: str,
        max_body: int,
        max_upload: int,
        strict_csrf: bool,
        developer: bool,
        positions: PositionStore | None = None,
        enforce_mfa: bool = False,
    ) -> None:
        self.app = app
        # Reads of a signed-in request are routed as that user's (read-your-writes,
        # store/consistency.py); the session lookup above them reads from the primary.
        self.positions = positions
        self.auth = auth
        self.version_id = version_id
        self._version_header = (b"x-version-id", version_id.encode())
        self.max_body = max_body
        self.max_upload = max_upload
        self.strict_csrf = strict_csrf
        self.developer = developer
        self.enforce_mfa = enforce_mfa

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        if "//" in scope["path"]:
            # Mattermost's router cleans paths, and mattermostdriver relies on it: its
            # get_reactions_of_post asks for /api/v4/posts/{post_id}//reactions.
            scope["path"] = _REPEATED_SLASHES.sub("/", scope["path"])
        request_id = new_request_id()
        scope["hubbub.request_id"] = request_id
        conn = HTTPConnection(scope)
        try:
            session, auth_error = await resolve_session(conn, self.auth, self.strict_csrf)
        except DatabaseBusy:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)  # the endpoint refuses it the same way
            else:
                await self._send_error(send, scope, server_busy())
            return
        scope["hubbub.session"] = session
        scope["hubbub.auth_error"] = auth_error
        if must_set_up_mfa(session, scope.get("method", "GET"), scope["path"], self.enforce_mfa):
            scope["hubbub.mfa_error"] = mfa_required_error()
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        path: str = scope["path"]
        upload = path.startswith(UPLOAD_PATHS) or bool(_UPLOAD_PATH.match(path))
        limit = self.max_upload if upload else self.max_body
        if "\x00" in path or b"%00" in scope.get("query_string", b""):
            await self._send_error(
                send,
                scope,
                AppError(
                    "api.context.invalid_url_param.app_error",
                    "NUL characters are not allowed in URLs.",
                    400,
                ),
            )
            return
        declared = conn.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._send_error(send, scope, _TooLarge(limit, upload))
            return

        started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit, upload)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append(self._version_header)
                headers += security_headers(headers)
                if scope["method"] == "GET" and path.startswith("/api/"):
                    headers.append((b"expires", b"0"))
                message["headers"] = headers
            await send(message)

        reader = (
            reading_as(session.user_id, self.positions)
            if session is not None
            else reading_as("", self.positions, pinned=True)
        )
        try:
            with reader as context:
                await self.app(
                    scope, limited_receive, self._identifying(send_with_headers, context)
                )
        except AppError as exc:
            if not started:
                await self._send_error(send, scope, exc)
        except DatabaseBusy:
            if not started:
                await self._send_error(send, scope, server_busy())
        except Exception as exc:
            if not started:  # otherwise the exception handler already answered and logged it
                log.exception("unhandled error on %s %s", scope["method"], path)
                await self._send_error(
                    send,
                    scope,
                    AppError(
                        "api.context.server_error.app_error",
                        "An internal server error occurred.",
                        500,
                        detailed_error=repr(exc),
                    ),
                )

    def _identifying(self, send: Send, context: ReadContext) -> Send:
        """For an anonymous request that wrote and answers with a session `Token` (a login):
        the writes become the logged-in user's before the answer leaves (read-your-writes)."""
        if context.user_id:
            return send

        async def identify_then_send(message: Message) -> None:
            if message["type"] == "http.response.start" and context.written:
                token = next(
                    (v for k, v in message.get("headers", []) if k.lower() == b"token"), None
                )
                if token:
                    session = await self.auth.resolve(token.decode())
                    if session is not None:
                        await context.identify(session.user_id)
            await send(message)

        return identify_then_send

    async def _send_error(self, send: Send, scope: Scope, error: AppError) -> None:
        rendered = render_error(error, scope, self.developer)
        await send_error(
            send,
            rendered,
            [
                (b"x-request-id", scope["hubbub.request_id"].encode()),
                (b"x-version-id", self.version_id.encode()),
                *security_headers([]),
            ],
        )
