"""Routes for changing and resetting a password (Mattermost's), under `PasswordSettings`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import ok, read_object
from hubbub.api.params import user_id_param
from hubbub.errors import AppError
from hubbub.services.auth import AuthService
from hubbub.services.password_reset import TOKEN_SIZE, PasswordResets
from hubbub.services.permissions import Permissions
from hubbub.services.users import UsersService


def _invalid(name: str) -> AppError:
    return AppError(
        "api.context.invalid_body_param.app_error",
        f"Invalid or missing {name} in request body.",
        400,
    )


class PasswordRoutes:
    def __init__(
        self,
        users: UsersService,
        auth: AuthService,
        resets: PasswordResets,
        permissions: Permissions,
    ) -> None:
        self.permissions = permissions
        self.users = users
        self.auth = auth
        self.resets = resets

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/users/password/reset", self.reset, methods=["POST"]),
            Route("/users/{user_id}/password", self.update, methods=["PUT"]),
        ]

    async def update(self, request: Request) -> Response:
        """Self: `current_password` is required, and the user's other sessions end. A system
        admin sets another user's password without it, and all of that user's sessions end."""
        user_id = user_id_param(request)
        session = require_session(request)
        data = await read_object(request, "password")
        new_password = data.get("new_password")
        if session.user_id == user_id:
            current = data.get("current_password")
            if not isinstance(current, str) or not current:
                raise _invalid("current_password")
            await self.auth.double_check_password(user_id, current)
            await self.users.set_password(user_id, new_password)
            await self.auth.revoke_all(user_id, keep_session_id=session.id)
        else:
            # Another user's: `edit_other_users` (what `sysconsole_write_user_management_users`
            # grants), never over a system admin (Permissions.can_act_for_user).
            await self.permissions.require_user(session, user_id)
            await self.users.set_password(user_id, new_password)
            await self.auth.revoke_all(user_id)
        await self.auth.invalidate_user_everywhere(user_id)
        return ok()

    async def reset(self, request: Request) -> Response:
        data = await read_object(request, "reset")
        token = data.get("token", data.get("code"))
        if not isinstance(token, str) or len(token) != TOKEN_SIZE:
            raise _invalid("token")
        user_id = await self.resets.redeem(token, data.get("new_password"))
        await self.auth.revoke_all(user_id)
        return ok()
