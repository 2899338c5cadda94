"""Routes for post search."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.search import SearchService
from hubbub.services.teams import TeamsService


class SearchRoutes:
    def __init__(self, settings: Settings, search: SearchService, teams: TeamsService) -> None:
        self.settings = settings
        self.search = search
        self.teams = teams

    def routes(self) -> list[BaseRoute]:
        return []
