"""Routes for teams and team members."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.teams import TeamsService
from hubbub.services.users import UsersService


class TeamRoutes:
    def __init__(self, settings: Settings, teams: TeamsService, users: UsersService) -> None:
        self.settings = settings
        self.teams = teams
        self.users = users

    def routes(self) -> list[BaseRoute]:
        return []
