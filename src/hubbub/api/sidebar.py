"""Routes for sidebar categories: `/users/{user_id}/teams/{team_id}/channels/categories[...]`.

Authorization follows Mattermost: the user's own categories, or anyone's with
`edit_other_users`. For one category, a caller without that permission gets 403 unless the
category is theirs and in the path's team (an unknown category is a 403 too, as in Mattermost);
in a bulk update or a new order, a category that is not theirs is a 400.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, ok, path_id, read_json, read_object
from hubbub.api.params import user_id_param
from hubbub.errors import AppError, bad_param, forbidden
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.services.sidebar import CategoryUpdate, SidebarService, is_valid_category_id

EDIT_OTHER_USERS = "edit_other_users"


def _bad_category() -> AppError:
    return bad_param("category")


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise _bad_category()
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise _bad_category()
    return value


def _channel_ids(data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get("channel_ids") or []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise _bad_category()
    return tuple(value)


def _category_update(data: object, category_id: str | None = None) -> CategoryUpdate:
    if not isinstance(data, dict):
        raise _bad_category()
    return CategoryUpdate(
        id=category_id if category_id is not None else _string(data, "id"),
        display_name=_string(data, "display_name"),
        sorting=_string(data, "sorting"),
        muted=_flag(data, "muted"),
        collapsed=_flag(data, "collapsed"),
        channel_ids=_channel_ids(data),
    )


class SidebarRoutes:
    def __init__(self, sidebar: SidebarService, permissions: Permissions) -> None:
        self.sidebar = sidebar
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        base = "/users/{user_id}/teams/{team_id}/channels/categories"
        one = base + "/{category_id}"
        return [
            Route(base, self.list_categories, methods=["GET"]),
            Route(base, self.create, methods=["POST"]),
            Route(base, self.update_many, methods=["PUT"]),
            Route(base + "/order", self.get_order, methods=["GET"]),
            Route(base + "/order", self.set_order, methods=["PUT"]),
            Route(one, self.get_one, methods=["GET"]),
            Route(one, self.update_one, methods=["PUT"]),
            Route(one, self.delete_one, methods=["DELETE"]),
        ]

    # Authorization

    async def _user_and_team(self, request: Request) -> tuple[Session, str, str]:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        if user_id != session.user_id and not await self.permissions.has(session, EDIT_OTHER_USERS):
            raise forbidden(EDIT_OTHER_USERS)
        return session, user_id, team_id

    async def _may_use(
        self, session: Session, user_id: str, team_id: str, category_id: str
    ) -> bool:
        if await self.permissions.has(session, EDIT_OTHER_USERS):
            return True
        owner = await self.sidebar.owner_of(category_id)
        return user_id == session.user_id and owner == (session.user_id, team_id)

    async def _one(self, request: Request) -> tuple[str, str, str]:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        category_id = request.path_params.get("category_id", "")
        if not is_valid_category_id(category_id):
            raise bad_param("category_id")
        if not await self._may_use(session, user_id, team_id, category_id):
            raise forbidden(EDIT_OTHER_USERS)
        return user_id, team_id, category_id

    # Handlers

    async def list_categories(self, request: Request) -> Response:
        _, user_id, team_id = await self._user_and_team(request)
        return JSONResponse((await self.sidebar.sidebar(user_id, team_id)).to_json())

    async def create(self, request: Request) -> Response:
        _, user_id, team_id = await self._user_and_team(request)
        data = await read_object(request, "category")
        if data.get("user_id") != user_id or data.get("team_id") != team_id:
            raise _bad_category()
        change = _category_update(data, category_id="")
        created = await self.sidebar.create(
            user_id, team_id, change.display_name, change.sorting, change.muted, change.channel_ids
        )
        # Mattermost answers a new category with 200, not 201.
        return JSONResponse(created.to_json())

    async def update_many(self, request: Request) -> Response:
        session, user_id, team_id = await self._user_and_team(request)
        data = await read_json(request, "categories")
        if not isinstance(data, list):
            raise _bad_category()
        changes = [_category_update(item) for item in data]
        for change in changes:
            if not is_valid_category_id(change.id) or not await self._may_use(
                session, user_id, team_id, change.id
            ):
                raise _bad_category()
        updated = await self.sidebar.update(user_id, team_id, changes)
        return JSONResponse([c.to_json() for c in updated])

    async def get_order(self, request: Request) -> Response:
        _, user_id, team_id = await self._user_and_team(request)
        return JSONResponse(await self.sidebar.order(user_id, team_id))

    async def set_order(self, request: Request) -> Response:
        session, user_id, team_id = await self._user_and_team(request)
        order = await read_json(request, "order")
        if not isinstance(order, list) or not all(isinstance(c, str) for c in order):
            raise _bad_category()
        for category_id in order:
            if not is_valid_category_id(category_id) or not await self._may_use(
                session, user_id, team_id, category_id
            ):
                raise _bad_category()
        return JSONResponse(await self.sidebar.set_order(user_id, team_id, order))

    async def get_one(self, request: Request) -> Response:
        user_id, team_id, category_id = await self._one(request)
        return JSONResponse((await self.sidebar.category(user_id, team_id, category_id)).to_json())

    async def update_one(self, request: Request) -> Response:
        user_id, team_id, category_id = await self._one(request)
        data = await read_object(request, "category")
        if data.get("user_id") != user_id or data.get("team_id") != team_id:
            raise _bad_category()
        [updated] = await self.sidebar.update(
            user_id, team_id, [_category_update(data, category_id=category_id)]
        )
        return JSONResponse(updated.to_json())

    async def delete_one(self, request: Request) -> Response:
        user_id, team_id, category_id = await self._one(request)
        await self.sidebar.delete(user_id, team_id, category_id)
        return ok()
