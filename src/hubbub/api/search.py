"""Routes for post search: in one team, or (as the web app does without a team) everywhere."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, field, path_id, read_object
from hubbub.config import Settings
from hubbub.errors import bad_body
from hubbub.services.search import DEFAULT_PER_PAGE, SearchParams, SearchService
from hubbub.services.team_access import TeamAccess

# Larger numbers than any real page or offset; beyond them a field is invalid.
_MAX_INT = 2**31


def _int(data: dict[str, Any], key: str, default: int) -> int:
    """An integer field: any JSON number in range (a fraction is dropped), else a 400."""
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body(key)
    if not -_MAX_INT < value < _MAX_INT:
        raise bad_body(key)
    return int(value)


def search_params(data: dict[str, Any]) -> SearchParams:
    return SearchParams(
        terms=field(data, "terms", str),
        is_or_search=field(data, "is_or_search", bool, False),
        time_zone_offset=_int(data, "time_zone_offset", 0),
        include_deleted_channels=field(data, "include_deleted_channels", bool, False),
        page=_int(data, "page", 0),
        per_page=_int(data, "per_page", DEFAULT_PER_PAGE),
    )


class SearchRoutes:
    def __init__(self, settings: Settings, search: SearchService, teams: TeamAccess) -> None:
        self.settings = settings
        self.search = search
        self.teams = teams

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/teams/{team_id}/posts/search", self.search_team, methods=["POST"]),
            Route("/posts/search", self.search_all, methods=["POST"]),
        ]

    async def search_team(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        await self.teams.require_member(session, team_id)
        params = search_params(await read_object(request, "search"))
        return JSONResponse(await self.search.search(session, team_id, params))

    async def search_all(self, request: Request) -> Response:
        session = require_session(request)
        params = search_params(await read_object(request, "search"))
        return JSONResponse(await self.search.search(session, None, params))
