"""Routes for user statuses."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, field, read_list, read_object
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import bad_param
from hubbub.ids import is_valid_id
from hubbub.services.permissions import Permissions
from hubbub.services.statuses import DND, STATUSES, StatusesService
from hubbub.services.users import UsersService


class StatusRoutes:
    def __init__(
        self,
        settings: Settings,
        statuses: StatusesService,
        users: UsersService,
        permissions: Permissions,
    ) -> None:
        self.settings = settings
        self.statuses = statuses
        self.users = users
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/users/status/ids", self.by_ids, methods=["POST"]),
            Route("/users/{user_id}/status", self.get_status, methods=["GET"]),
            Route("/users/{user_id}/status", self.update_status, methods=["PUT"]),
        ]

    async def get_status(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse(await self.statuses.get(user_id_param(request)))

    async def update_status(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        data = await read_object(request, "status")
        # Mattermost requires the body to name the same user as the path.
        if data.get("user_id") != user_id:
            raise bad_param("user_id")
        await self.permissions.require_user(session, user_id)
        status = data.get("status")
        if status not in STATUSES:
            raise bad_param("status")
        dnd_end_time = field(data, "dnd_end_time", int, 0) if status == DND else 0
        dnd_end_time = max(0, min(dnd_end_time, 2**62))
        await self.users.get(user_id)
        result = await self.statuses.set_status(
            user_id, status, manual=True, dnd_end_time=dnd_end_time
        )
        return JSONResponse(result)

    async def by_ids(self, request: Request) -> Response:
        require_session(request)
        ids: list[str] = await read_list(request, "user_ids")
        if not ids or not all(is_valid_id(i) for i in ids):
            raise bad_param("user_ids")
        return JSONResponse(await self.statuses.get_many(ids))
