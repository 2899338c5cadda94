"""Routes for roles: read by every signed-in client, patched by admins (Mattermost's rules)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, read_json, read_object
from hubbub.errors import AppError, bad_param, forbidden
from hubbub.services.permissions import Permissions
from hubbub.services.role_catalog import (
    GUEST_ROLES,
    NOT_PATCHABLE_PERMISSIONS,
    PROTECTED_SYSTEM_ROLES,
    SCHEME_ROLES,
)
from hubbub.services.roles import RolesService, is_valid_role_name

_ROLE_ID = re.compile(r"[A-Za-z0-9]+")
_ROLE_NAME = re.compile(r"[a-z0-9_]+")
MANAGE_SYSTEM = "manage_system"
WRITE_PERMISSIONS = "sysconsole_write_user_management_permissions"
WRITE_SYSTEM_ROLES = "sysconsole_write_user_management_system_roles"


def _not_found() -> AppError:
    return AppError("api.context.404.app_error", "Sorry, we could not find the page.", 404)


def _role_id(request: Request) -> str:
    value = str(request.path_params.get("role_id", ""))
    if not _ROLE_ID.fullmatch(value):
        raise _not_found()
    if len(value) != 26:
        raise bad_param("role_id")
    return value


class RoleRoutes:
    def __init__(self, roles: RolesService, permissions: Permissions) -> None:
        self.roles = roles
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/roles", self.list_all, methods=["GET"]),
            Route("/roles/names", self.by_names, methods=["POST"]),
            Route("/roles/name/{role_name}", self.by_name, methods=["GET"]),
            Route("/roles/{role_id}", self.by_id, methods=["GET"]),
            Route("/roles/{role_id}/patch", self.patch, methods=["PUT"]),
        ]

    async def list_all(self, request: Request) -> Response:
        session = require_session(request)
        if not await self.permissions.has(session, MANAGE_SYSTEM):
            raise forbidden(MANAGE_SYSTEM)
        return JSONResponse([r.to_json() for r in await self.roles.all()])

    async def by_names(self, request: Request) -> Response:
        require_session(request)
        names = await read_json(request, "rolenames")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise bad_param("rolenames")
        cleaned = [n for n in names if n.strip()]
        if not all(is_valid_role_name(n) for n in cleaned):
            raise bad_param("rolename")
        return JSONResponse([r.to_json() for r in await self.roles.by_names(cleaned)])

    async def by_name(self, request: Request) -> Response:
        require_session(request)
        name = str(request.path_params.get("role_name", ""))
        if not _ROLE_NAME.fullmatch(name):
            raise _not_found()
        if not is_valid_role_name(name):
            raise bad_param("role_name")
        return JSONResponse((await self.roles.by_name(name)).to_json())

    async def by_id(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse((await self.roles.by_id(_role_id(request))).to_json())

    async def patch(self, request: Request) -> Response:
        session = require_session(request)
        role_id = _role_id(request)
        data = await read_object(request, "role")
        permissions = data.get("permissions")
        if permissions is not None and (
            not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
        ):
            raise bad_param("role")
        role = await self.roles.by_id(role_id)
        required = MANAGE_SYSTEM if role.name in PROTECTED_SYSTEM_ROLES else WRITE_PERMISSIONS
        if not await self.permissions.has(session, required):
            raise forbidden(required)
        if permissions is None:
            return JSONResponse(role.to_json())
        if role.name in GUEST_ROLES:
            # Guest permissions are a licensed feature in Mattermost; hubbub presents itself
            # unlicensed, so it answers the same.
            raise AppError(
                "api.roles.patch_roles.license.error",
                "Your license does not support advanced permissions.",
                501,
            )
        changed = set(role.permissions) ^ set(permissions)
        blocked = sorted(changed & NOT_PATCHABLE_PERMISSIONS)
        if blocked:
            raise AppError(
                "api.roles.patch_roles.not_allowed_permission.error",
                "One or more of the following permissions that you are trying to add or remove "
                "is not allowed.",
                501,
                detailed_error=f"Cannot add or remove permission: {blocked[0]}",
            )
        scoped = WRITE_PERMISSIONS if role.name in SCHEME_ROLES else WRITE_SYSTEM_ROLES
        if not await self.permissions.has(session, scoped):
            raise forbidden(scoped)
        return JSONResponse((await self.roles.patch(role, permissions)).to_json())
