"""Routes for users, login/logout, sessions, personal access tokens and bots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import (
    attach_session_cookies,
    clear_session_cookies,
    optional_session,
    require_session,
)
from hubbub.api.http import (
    JSONResponse,
    created,
    etag_response,
    field,
    ok,
    optional_field,
    optional_str_map,
    paging,
    path_id,
    query_int,
    read_list,
    read_object,
)
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import AppError, forbidden, not_found
from hubbub.services.auth import AuthService
from hubbub.services.permissions import MANAGE_SYSTEM, Permissions
from hubbub.services.roles import RolesService, check_user_roles
from hubbub.services.session import Session
from hubbub.services.users import PATCHABLE, UserPatch, UsersService
from hubbub.version import etag


class UserRoutes:
    def __init__(
        self,
        settings: Settings,
        users: UsersService,
        auth: AuthService,
        permissions: Permissions,
        roles: RolesService,
    ) -> None:
        self.settings = settings
        self.users = users
        self.auth = auth
        self.permissions = permissions
        self.roles = roles

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/users", self.create_user, methods=["POST"]),
            Route("/users", self.list_users, methods=["GET"]),
            Route("/users/login", self.login, methods=["POST"]),
            Route("/users/logout", self.logout, methods=["POST"]),
            Route("/users/ids", self.by_ids, methods=["POST"]),
            Route("/users/group_channels", self.in_group_channels, methods=["POST"]),
            Route("/users/sessions/device", self.attach_device, methods=["PUT"]),
            Route("/users/usernames", self.by_usernames, methods=["POST"]),
            Route("/users/search", self.search, methods=["POST"]),
            Route("/users/autocomplete", self.autocomplete, methods=["GET"]),
            Route("/users/username/{username}", self.by_username, methods=["GET"]),
            Route("/users/email/{email}", self.by_email, methods=["GET"]),
            Route("/users/tokens/revoke", self.revoke_token, methods=["POST"]),
            Route("/users/tokens/disable", self.disable_token, methods=["POST"]),
            Route("/users/tokens/enable", self.enable_token, methods=["POST"]),
            Route("/users/tokens/{token_id}", self.get_token, methods=["GET"]),
            Route("/users/{user_id}", self.get_user, methods=["GET"]),
            Route("/users/{user_id}", self.deactivate, methods=["DELETE"]),
            Route("/users/{user_id}/patch", self.patch_user, methods=["PUT"]),
            Route("/users/{user_id}", self.update_user, methods=["PUT"]),
            Route("/users/{user_id}/roles", self.update_roles, methods=["PUT"]),
            Route("/users/{user_id}/active", self.update_active, methods=["PUT"]),
            Route("/users/{user_id}/sessions", self.list_sessions, methods=["GET"]),
            Route("/users/{user_id}/sessions/revoke", self.revoke_session, methods=["POST"]),
            Route("/users/{user_id}/sessions/revoke/all", self.revoke_all, methods=["POST"]),
            Route("/users/{user_id}/tokens", self.create_token, methods=["POST"]),
            Route("/users/{user_id}/tokens", self.list_tokens, methods=["GET"]),
            Route("/bots", self.create_bot, methods=["POST"]),
            Route("/bots", self.list_bots, methods=["GET"]),
            Route("/bots/{bot_user_id}", self.get_bot, methods=["GET"]),
        ]

    # Accounts

    async def create_user(self, request: Request) -> Response:
        session = optional_session(request)
        data = await read_object(request, "user")
        is_admin = session is not None and await self.permissions.has(session, MANAGE_SYSTEM)
        if not is_admin:
            if not self.settings.TeamSettings.EnableUserCreation:
                raise AppError(
                    "api.user.create_user.disabled.app_error", "User creation is disabled.", 403
                )
            if not self.settings.TeamSettings.EnableOpenServer and await self.users.count() > 0:
                raise AppError(
                    "api.user.create_user.no_open_server",
                    "This server does not allow open signups. Please speak with your "
                    "Administrator to receive an invitation.",
                    403,
                )
        user = await self.users.create(
            email=data.get("email"),
            username=data.get("username"),
            password=data.get("password"),
            first_name=field(data, "first_name", str, ""),
            last_name=field(data, "last_name", str, ""),
            nickname=field(data, "nickname", str, ""),
            position=field(data, "position", str, ""),
            locale=field(data, "locale", str, "en"),
            first_becomes_admin=True,
        )
        return created(user)

    async def list_users(self, request: Request) -> Response:
        require_session(request)
        page, per_page = paging(request)
        return JSONResponse(await self.users.list_page(page, per_page))

    async def get_user(self, request: Request) -> Response:
        require_session(request)
        user = await self.users.get(user_id_param(request))
        return etag_response(request, etag(user["id"], user["update_at"]), user)

    async def by_username(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse(await self.users.get_by_username(request.path_params["username"]))

    async def by_email(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse(await self.users.get_by_email(request.path_params["email"]))

    async def by_ids(self, request: Request) -> Response:
        require_session(request)
        ids: list[str] = await read_list(request, "user_ids")
        if not ids:
            raise AppError(
                "api.context.invalid_body_param.app_error", "Invalid or missing user_ids.", 400
            )
        return JSONResponse(await self.users.get_many(ids, since=query_int(request, "since")))

    async def in_group_channels(self, request: Request) -> Response:
        session = require_session(request)
        ids: list[str] = await read_list(request, "channel_ids")
        if not ids:
            raise AppError(
                "api.context.invalid_param.app_error", "Invalid or missing channel_ids.", 400
            )
        return JSONResponse(await self.users.in_group_channels(session.user_id, ids))

    async def attach_device(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "device_id")
        device_id = field(data, "device_id", str)
        if not device_id or len(device_id) > 512:
            raise AppError(
                "api.context.invalid_body_param.app_error", "Invalid or missing device_id.", 400
            )
        await self.auth.attach_device(session, device_id)
        return ok()

    async def by_usernames(self, request: Request) -> Response:
        require_session(request)
        names: list[str] = await read_list(request, "usernames")
        return JSONResponse(await self.users.get_by_usernames(names))

    async def search(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "search")
        term = field(data, "term", str)
        limit = min(max(1, field(data, "limit", int, 100)), 1000)
        allow_inactive = bool(data.get("allow_inactive")) and await self.permissions.has(
            session, MANAGE_SYSTEM
        )
        return JSONResponse(await self.users.search(term, limit, allow_inactive=allow_inactive))

    async def autocomplete(self, request: Request) -> Response:
        require_session(request)
        name = request.query_params.get("name", "")
        limit = min(max(1, query_int(request, "limit", 100)), 1000)
        found = await self.users.search(name, limit)
        return JSONResponse({"users": found, "out_of_channel": []})

    async def _self_or_admin(self, request: Request, user_id: str) -> Session:
        """Mattermost's `SessionHasPermissionToUser` (403 naming `edit_other_users`)."""
        session = require_session(request)
        await self.permissions.require_user(session, user_id)
        return session

    async def patch_user(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        patch = user_patch(await read_object(request, "user"))
        user = await self.users.patch(user_id, patch)
        await self.auth.invalidate_user_everywhere(user_id)
        return JSONResponse(user)

    async def update_user(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        data = await read_object(request, "user")
        if data.get("id") not in (None, user_id):
            raise AppError("api.user.update_user.id.app_error", "The user id does not match.", 400)
        return JSONResponse(await self.users.patch(user_id, user_patch(data)))

    async def update_roles(self, request: Request) -> Response:
        """Mattermost's order: the roles string, then `manage_roles`, then the user, then
        whether the roles exist."""
        session = require_session(request)
        user_id = user_id_param(request)
        data = await read_object(request, "roles")
        names = check_user_roles(field(data, "roles", str))
        await self.permissions.require(session, "manage_roles")
        await self.users.get_row(user_id)
        await self.roles.require_exist(names)
        await self.users.set_roles(user_id, " ".join(names))
        await self.auth.invalidate_user_everywhere(user_id)
        return ok()

    async def update_active(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        data = await read_object(request, "active")
        active = field(data, "active", bool)
        await self.users.set_active(user_id, active)
        if not active:
            await self.auth.revoke_all(user_id)
        return ok()

    async def deactivate(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        await self.users.set_active(user_id, False)
        await self.auth.revoke_all(user_id)
        return ok()

    # Sessions

    async def login(self, request: Request) -> Response:
        data = await read_object(request, "login")
        device_id = data.get("device_id") or data.get("deviceId") or ""
        if not isinstance(device_id, str):
            device_id = ""
        mfa_token = data.get("token")
        user, session = await self.auth.login(
            data.get("login_id"),
            data.get("password"),
            device_id,
            mfa_token if isinstance(mfa_token, str) else "",
        )
        response = JSONResponse(user, headers={"Token": session.token})
        if request.headers.get("x-requested-with") == "XMLHttpRequest":
            service = self.settings.ServiceSettings
            hours = (
                service.SessionLengthMobileInHours if device_id else service.SessionLengthWebInHours
            )
            attach_session_cookies(response, session, hours * 3600, request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        session = optional_session(request)
        if session is not None:
            await self.auth.logout(session)
        response = ok()
        clear_session_cookies(response)
        return response

    async def list_sessions(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        return JSONResponse(await self.auth.list_sessions(user_id))

    async def revoke_session(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        data = await read_object(request, "session")
        await self.auth.revoke_session(field(data, "session_id", str), user_id)
        return ok()

    async def revoke_all(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._self_or_admin(request, user_id)
        await self.auth.revoke_all(user_id)
        return ok()

    # Personal access tokens

    async def _token_check(self, request: Request, permission: str, owner_id: str) -> None:
        """Mattermost's order for the token endpoints: the token permission itself
        (`create_user_access_token`, `read_user_access_token`, `revoke_user_access_token`, granted
        by the `system_user_access_token` role), then the right to act for the token's user
        (`SessionHasPermissionToUserOrBot`)."""
        session = require_session(request)
        await self.permissions.require(session, permission)
        bot = await self._owned_bot(owner_id)
        if bot is None:
            await self.permissions.require_user(session, owner_id)
            return
        if bot["owner_id"] == session.user_id:
            if not await self.permissions.has(session, "manage_bots"):
                raise forbidden("manage_bots")
        elif not await self.permissions.has(session, "manage_others_bots"):
            raise forbidden("manage_others_bots")

    async def _owned_bot(self, user_id: str) -> dict[str, Any] | None:
        try:
            return await self.users.get_bot(user_id)
        except AppError:
            return None

    async def create_token(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._token_check(request, "create_user_access_token", user_id)
        data = await read_object(request, "token")
        token = await self.auth.create_access_token(user_id, field(data, "description", str))
        return created(token)

    async def list_tokens(self, request: Request) -> Response:
        user_id = user_id_param(request)
        await self._token_check(request, "read_user_access_token", user_id)
        return JSONResponse(await self.auth.list_access_tokens(user_id))

    async def get_token(self, request: Request) -> Response:
        token_id = path_id(request, "token_id")
        await self.permissions.require(require_session(request), "read_user_access_token")
        token = await self.auth.get_access_token(token_id)
        await self._token_check(request, "read_user_access_token", token["user_id"])
        return JSONResponse(token)

    async def _token_from_body(self, request: Request, permission: str) -> str:
        data = await read_object(request, "token")
        token_id = field(data, "token_id", str)
        await self.permissions.require(require_session(request), permission)
        token = await self.auth.get_access_token(token_id)
        await self._token_check(request, permission, token["user_id"])
        return token_id

    async def revoke_token(self, request: Request) -> Response:
        token_id = await self._token_from_body(request, "revoke_user_access_token")
        await self.auth.revoke_access_token(token_id)
        return ok()

    async def disable_token(self, request: Request) -> Response:
        # Mattermost has no permission of its own for disabling: revoking covers it.
        token_id = await self._token_from_body(request, "revoke_user_access_token")
        await self.auth.set_access_token_active(token_id, False)
        return ok()

    async def enable_token(self, request: Request) -> Response:
        token_id = await self._token_from_body(request, "create_user_access_token")
        await self.auth.set_access_token_active(token_id, True)
        return ok()

    # Bots

    async def create_bot(self, request: Request) -> Response:
        session = require_session(request)
        if not self.settings.ServiceSettings.EnableBotAccountCreation:
            raise AppError("api.bot.create_disabled", "Bot creation has been disabled.", 403)
        await self.permissions.require(session, "create_bot")
        data = await read_object(request, "bot")
        bot = await self.users.create_bot(
            session.user_id,
            data.get("username"),
            field(data, "display_name", str, ""),
            field(data, "description", str, ""),
        )
        return created(bot)

    async def list_bots(self, request: Request) -> Response:
        """Mattermost's rule: `read_others_bots` lists every bot, `read_bots` one's own."""
        session = require_session(request)
        page, per_page = paging(request)
        if await self.permissions.has(session, "read_others_bots"):
            owner: str | None = None
        elif await self.permissions.has(session, "read_bots"):
            owner = session.user_id
        else:
            raise forbidden("read_bots")
        return JSONResponse(await self.users.list_bots(page, per_page, owner))

    async def get_bot(self, request: Request) -> Response:
        """Any bot with `read_others_bots`; one's own with `read_bots` (another's is not found,
        as Mattermost answers); neither: 403."""
        session = require_session(request)
        bot_id = path_id(request, "bot_user_id")
        if await self.permissions.has(session, "read_others_bots"):
            return JSONResponse(await self.users.get_bot(bot_id))
        if not await self.permissions.has(session, "read_bots"):
            raise forbidden("read_bots")
        bot = await self.users.get_bot(bot_id)
        if bot["owner_id"] != session.user_id:
            raise not_found("bot", "store.sql_bot.get.missing.app_error")
        return JSONResponse(bot)


def user_patch(data: Mapping[str, Any]) -> UserPatch:
    """The typed patch in a request body: a field of the wrong type is a 400 naming it."""
    text = {key: optional_field(data, key, str) for key in PATCHABLE}
    return UserPatch(
        username=text["username"],
        nickname=text["nickname"],
        first_name=text["first_name"],
        last_name=text["last_name"],
        position=text["position"],
        email=text["email"],
        locale=text["locale"],
        props=optional_str_map(data, "props"),
        notify_props=optional_str_map(data, "notify_props"),
        timezone=optional_str_map(data, "timezone"),
    )
