"""Routes for multi-factor authentication (Mattermost's), and the rule that enforces it.

With `EnforceMultifactorAuthentication`, a signed-in user without MFA may only set it up: every
other call that needs a session answers 403 `api.context.mfa_required.app_error` (Mattermost's
`MfaRequired`), so the client sends them to the set-up page. Bots are exempt, and so are the
calls that set MFA up, `GET /users/me` and logging out.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, field, ok, read_object
from hubbub.api.params import user_id_param
from hubbub.errors import AppError
from hubbub.services.auth import AuthService
from hubbub.services.mfa import MfaService
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session

# What a user who must set MFA up may still call (paths under /api/v4).
_SETUP = re.compile(r"^/api/v4/users/[^/]+/mfa(/generate)?/?$")
_EXEMPT = frozenset({("GET", "/api/v4/users/me"), ("POST", "/api/v4/users/logout")})


def mfa_required_error() -> AppError:
    return AppError(
        "api.context.mfa_required.app_error",
        "Multi-factor authentication is required on this server.",
        403,
    )


def must_set_up_mfa(session: Session | None, method: str, path: str, enforced: bool) -> bool:
    """True when this request is one a user without MFA may not make (the session then counts
    as absent for routes that require one: `require_session` raises `mfa_required_error`)."""
    if not enforced or session is None or session.mfa_active or session.is_bot:
        return False
    return (method, path.rstrip("/") or "/") not in _EXEMPT and not _SETUP.match(path)


class MfaRoutes:
    def __init__(self, mfa: MfaService, auth: AuthService, permissions: Permissions) -> None:
        self.mfa = mfa
        self.auth = auth
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/users/mfa", self.check_required, methods=["POST"]),
            Route("/users/{user_id}/mfa", self.update, methods=["PUT"]),
            Route("/users/{user_id}/mfa/generate", self.generate, methods=["POST"]),
        ]

    async def check_required(self, request: Request) -> Response:
        data = await read_object(request, "login_id")
        login_id = field(data, "login_id", str, "")
        return JSONResponse({"mfa_required": await self.mfa.required_for(login_id)})

    async def update(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self.permissions.require_user(require_session(request), user_id)
        data = await read_object(request, "mfa")
        activate = data.get("activate")
        if not isinstance(activate, bool):
            raise AppError(
                "api.context.invalid_body_param.app_error",
                "Invalid or missing activate in request body.",
                400,
            )
        if activate:
            code = data.get("code")
            if not isinstance(code, str) or not code:
                raise AppError(
                    "api.context.invalid_body_param.app_error",
                    "Invalid or missing code in request body.",
                    400,
                )
            await self.mfa.activate(user_id, code)
        else:
            await self.mfa.deactivate(user_id)
        # Sessions carry the MFA state (the enforcement rule reads it): drop cached copies.
        await self.auth.invalidate_user_everywhere(user_id)
        return ok()

    async def generate(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self.permissions.require_user(require_session(request), user_id)
        secret = await self.mfa.generate(user_id)
        await self.auth.invalidate_user_everywhere(user_id)
        return JSONResponse(
            secret,
            headers={"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"},
        )
