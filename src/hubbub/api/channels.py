"""Routes for channels and channel members."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.channels import ChannelsService
from hubbub.services.teams import TeamsService
from hubbub.services.users import UsersService


class ChannelRoutes:
    def __init__(
        self,
        settings: Settings,
        channels: ChannelsService,
        teams: TeamsService,
        users: UsersService,
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.teams = teams
        self.users = users

    def routes(self) -> list[BaseRoute]:
        return []
