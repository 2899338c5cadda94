"""Routes for team membership: member lists, join and add, remove, roles, stats, unread counts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import (
    JSONResponse,
    created,
    field,
    ok,
    paging,
    path_id,
    query_bool,
    read_list,
    read_object,
)
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import bad_param
from hubbub.ids import is_valid_id
from hubbub.services.team_members import TeamMembers


class TeamMemberRoutes:
    def __init__(self, settings: Settings, members: TeamMembers) -> None:
        self.settings = settings
        self.members = members

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/teams/{team_id}/stats", self.stats, methods=["GET"]),
            Route("/teams/{team_id}/members", self.list_members, methods=["GET"]),
            Route("/teams/{team_id}/members", self.add_member, methods=["POST"]),
            Route("/teams/{team_id}/members/batch", self.add_members, methods=["POST"]),
            Route("/teams/{team_id}/members/ids", self.members_by_ids, methods=["POST"]),
            Route("/teams/{team_id}/members/{user_id}", self.get_member, methods=["GET"]),
            Route("/teams/{team_id}/members/{user_id}", self.remove_member, methods=["DELETE"]),
            Route("/teams/{team_id}/members/{user_id}/roles", self.update_roles, methods=["PUT"]),
            Route("/users/{user_id}/teams/members", self.members_for_user, methods=["GET"]),
            Route("/users/{user_id}/teams/unread", self.unread_for_user, methods=["GET"]),
        ]

    async def stats(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.members.stats(session, path_id(request, "team_id")))

    async def list_members(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        page, per_page = paging(request)
        return JSONResponse(await self.members.page(session, team_id, page, per_page))

    async def get_member(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        user_id = user_id_param(request)
        return JSONResponse(await self.members.get(session, team_id, user_id))

    async def members_by_ids(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        user_ids: list[str] = await read_list(request, "user_ids")
        if not user_ids or not all(is_valid_id(u) for u in user_ids):
            raise bad_param("user_ids")
        return JSONResponse(await self.members.by_ids(session, team_id, user_ids))

    @staticmethod
    def _member_user_id(team_id: str, member: dict[str, Any]) -> str:
        if member.get("team_id") != team_id:
            raise bad_param("team_id")
        user_id = member.get("user_id")
        if not is_valid_id(user_id):
            raise bad_param("user_id")
        return str(user_id)

    async def add_member(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        user_id = self._member_user_id(team_id, await read_object(request, "team_member"))
        return created(await self.members.add(session, team_id, user_id))

    async def add_members(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        members: list[dict[str, Any]] = await read_list(request, "members", dict)
        if not members:
            raise bad_param("members")
        user_ids = [self._member_user_id(team_id, m) for m in members]
        graceful = query_bool(request, "graceful")
        return created(await self.members.add_many(session, team_id, user_ids, graceful))

    async def remove_member(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        await self.members.remove(session, team_id, user_id_param(request))
        return ok()

    async def update_roles(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        user_id = user_id_param(request)
        roles = field(await read_object(request, "roles"), "roles", str)
        await self.members.update_roles(session, team_id, user_id, roles)
        return ok()

    async def members_for_user(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.members.for_user(session, user_id_param(request)))

    async def unread_for_user(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        exclude = request.query_params.get("exclude_team", "")
        if exclude and not is_valid_id(exclude):
            raise bad_param("exclude_team")
        return JSONResponse(await self.members.unread_for_user(session, user_id, exclude))
