"""Who is calling: token lookup in Mattermost's order, the CSRF rule, and cookie handling."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import Response

from hubbub.errors import AppError, unauthorized
from hubbub.services.auth import AuthService
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session

COOKIE_TOKEN = "MMAUTHTOKEN"
COOKIE_USER = "MMUSERID"
COOKIE_CSRF = "MMCSRF"


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    from_cookie: bool


def token_from(conn: HTTPConnection) -> Credentials | None:
    """The cookie wins over the header; the `Bearer`/`Token` scheme is matched in any case."""
    cookie = conn.cookies.get(COOKIE_TOKEN)
    if cookie:
        return Credentials(cookie, True)
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in {"bearer", "token"} and value.strip():
        return Credentials(value.strip(), False)
    return None


async def resolve_session(
    conn: HTTPConnection, auth: AuthService, strict_csrf: bool
) -> tuple[Session | None, AppError | None]:
    """The caller's session (or None) and, when a token was given but is unusable, why."""
    creds = token_from(conn)
    if creds is None:
        return None, None
    session = await auth.resolve(creds.token)
    if session is None:
        return None, unauthorized()
    method = conn.scope.get("method", "GET")
    if creds.from_cookie and method not in {"GET", "HEAD", "OPTIONS"}:
        csrf = conn.headers.get("x-csrf-token", "")
        if csrf != session.csrf_token:
            xhr = conn.headers.get("x-requested-with", "") == "XMLHttpRequest"
            if not xhr or strict_csrf:
                return None, unauthorized()
    return session, None


def require_session(conn: HTTPConnection) -> Session:
    session: Session | None = conn.scope.get("hubbub.session")
    if session is None:
        raise conn.scope.get("hubbub.auth_error") or unauthorized()
    mfa_error: AppError | None = conn.scope.get("hubbub.mfa_error")
    if mfa_error is not None:
        raise mfa_error
    return session


def optional_session(conn: HTTPConnection) -> Session | None:
    """The caller's session, or None (also for one that must set MFA up first)."""
    if conn.scope.get("hubbub.mfa_error") is not None:
        return None
    return conn.scope.get("hubbub.session")


async def require_permission(
    conn: HTTPConnection, permissions: Permissions, permission: str
) -> Session:
    """The session if its (system) roles grant `permission`; 401 without a session, else 403."""
    session = require_session(conn)
    await permissions.require(session, permission)
    return session


def attach_session_cookies(
    response: Response, session: Session, max_age_seconds: int, secure: bool
) -> None:
    response.set_cookie(
        COOKIE_TOKEN,
        session.token,
        max_age=max_age_seconds,
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    response.set_cookie(
        COOKIE_USER, session.user_id, max_age=max_age_seconds, secure=secure, samesite="lax"
    )
    response.set_cookie(
        COOKIE_CSRF, session.csrf_token, max_age=max_age_seconds, secure=secure, samesite="lax"
    )


def clear_session_cookies(response: Response) -> None:
    for name in (COOKIE_TOKEN, COOKIE_USER, COOKIE_CSRF):
        response.delete_cookie(name)
