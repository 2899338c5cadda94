"""Routes for preferences: `/users/{user_id}/preferences[...]`.

A user reads and writes their own preferences; `edit_other_users` (system admins) reaches
anyone's. Category and name in paths are `[A-Za-z0-9_]+`, as Mattermost routes them (anything
else is an unknown route, 404).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, ok, read_json
from hubbub.api.params import user_id_param
from hubbub.errors import AppError, forbidden
from hubbub.services.permissions import Permissions
from hubbub.services.preferences import PreferencesService, parse_preferences

_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


def _not_found() -> AppError:
    return AppError("api.context.404.app_error", "Sorry, we could not find the page.", 404)


def _segment(request: Request, name: str) -> str:
    value = str(request.path_params.get(name, ""))
    if not _SEGMENT.fullmatch(value):
        raise _not_found()
    return value


class PreferenceRoutes:
    def __init__(self, preferences: PreferencesService, permissions: Permissions) -> None:
        self.preferences = preferences
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        base = "/users/{user_id}/preferences"
        return [
            Route(base, self.get_all, methods=["GET"]),
            Route(base, self.save, methods=["PUT"]),
            Route(base + "/delete", self.delete, methods=["POST"]),
            Route(base + "/{category}", self.get_category, methods=["GET"]),
            Route(base + "/{category}/name/{name}", self.get_one, methods=["GET"]),
        ]

    async def _user(self, request: Request) -> str:
        session = require_session(request)
        user_id = user_id_param(request)
        if user_id != session.user_id and not await self.permissions.has(
            session, "edit_other_users"
        ):
            raise forbidden("edit_other_users")
        return user_id

    async def get_all(self, request: Request) -> Response:
        user_id = await self._user(request)
        return JSONResponse([p.to_json() for p in await self.preferences.get_all(user_id)])

    async def get_category(self, request: Request) -> Response:
        category = _segment(request, "category")
        user_id = await self._user(request)
        found = await self.preferences.get_category(user_id, category)
        return JSONResponse([p.to_json() for p in found])

    async def get_one(self, request: Request) -> Response:
        category = _segment(request, "category")
        name = _segment(request, "name")
        user_id = await self._user(request)
        return JSONResponse((await self.preferences.get_one(user_id, category, name)).to_json())

    async def save(self, request: Request) -> Response:
        user_id = await self._user(request)
        prefs = parse_preferences(await read_json(request, "preferences"))
        await self.preferences.save(user_id, prefs)
        return ok()

    async def delete(self, request: Request) -> Response:
        user_id = await self._user(request)
        prefs = parse_preferences(await read_json(request, "preferences"))
        await self.preferences.delete(user_id, prefs)
        return ok()
