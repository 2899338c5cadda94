"""Routes for teams: create, read, patch, update, delete (members: `api/team_members.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import (
    JSONResponse,
    created,
    field,
    ok,
    optional_field,
    paging,
    path_id,
    query_bool,
    read_object,
)
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.services.teams import NewTeam, TeamPatch, TeamsService, TeamUpdate


class TeamRoutes:
    def __init__(self, settings: Settings, teams: TeamsService) -> None:
        self.settings = settings
        self.teams = teams

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/teams", self.create_team, methods=["POST"]),
            Route("/teams", self.list_teams, methods=["GET"]),
            Route("/teams/name/{name}/exists", self.team_exists, methods=["GET"]),
            Route("/teams/name/{name}", self.get_by_name, methods=["GET"]),
            Route("/teams/{team_id}", self.get_team, methods=["GET"]),
            Route("/teams/{team_id}", self.update_team, methods=["PUT"]),
            Route("/teams/{team_id}", self.delete_team, methods=["DELETE"]),
            Route("/teams/{team_id}/patch", self.patch_team, methods=["PUT"]),
            Route("/users/{user_id}/teams", self.teams_for_user, methods=["GET"]),
        ]

    # Teams

    async def create_team(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "team")
        type_ = field(data, "type", str, "")
        new = NewTeam(
            name=field(data, "name", str, ""),
            display_name=field(data, "display_name", str, ""),
            type=type_,
            description=field(data, "description", str, ""),
            company_name=field(data, "company_name", str, ""),
            allowed_domains=field(data, "allowed_domains", str, ""),
        )
        return created(await self.teams.create(session, new))

    async def list_teams(self, request: Request) -> Response:
        session = require_session(request)
        page, per_page = paging(request)
        include_deleted = query_bool(request, "include_deleted")
        return JSONResponse(
            await self.teams.list_teams(session, page, per_page, include_deleted=include_deleted)
        )

    async def get_team(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.teams.get_for(session, path_id(request, "team_id")))

    async def get_by_name(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.teams.get_by_name_for(session, request.path_params["name"]))

    async def team_exists(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse({"exists": await self.teams.exists(request.path_params["name"])})

    async def patch_team(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        data = await read_object(request, "team")
        patch = TeamPatch(
            display_name=optional_field(data, "display_name", str),
            description=optional_field(data, "description", str),
            company_name=optional_field(data, "company_name", str),
            allowed_domains=optional_field(data, "allowed_domains", str),
            invite_id=optional_field(data, "invite_id", str),
            allow_open_invite=optional_field(data, "allow_open_invite", bool),
        )
        return JSONResponse(await self.teams.patch(session, team_id, patch))

    async def update_team(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        data = await read_object(request, "team")
        if data.get("id") != team_id:
            raise AppError("api.context.invalid_param.app_error", "Invalid id parameter.", 400)
        # A full update: omitted fields are blank, as in Mattermost.
        team = TeamUpdate(
            display_name=field(data, "display_name", str, ""),
            description=field(data, "description", str, ""),
            company_name=field(data, "company_name", str, ""),
            allowed_domains=field(data, "allowed_domains", str, ""),
            allow_open_invite=field(data, "allow_open_invite", bool, False),
        )
        return JSONResponse(await self.teams.update(session, team_id, team))

    async def delete_team(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        if query_bool(request, "permanent"):
            raise AppError(
                "api.user.delete_team.not_enabled.app_error",
                "Permanent team deletion feature is not enabled. Please contact your System "
                "Administrator.",
                401,
            )
        await self.teams.soft_delete(session, team_id)
        return ok()

    async def teams_for_user(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.teams.teams_for_user(session, user_id_param(request)))
