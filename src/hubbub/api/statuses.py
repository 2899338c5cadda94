"""Routes for user statuses."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.statuses import StatusesService
from hubbub.services.users import UsersService


class StatusRoutes:
    def __init__(self, settings: Settings, statuses: StatusesService, users: UsersService) -> None:
        self.settings = settings
        self.statuses = statuses
        self.users = users

    def routes(self) -> list[BaseRoute]:
        return []
