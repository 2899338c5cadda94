"""Channels (public, private, direct, group) and channel membership."""

from __future__ import annotations

from hubbub.cluster.events import EventPublisher
from hubbub.config import Settings
from hubbub.services.teams import TeamsService
from hubbub.services.users import UsersService
from hubbub.store.db import Database


class ChannelsService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        teams: TeamsService,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.users = users
        self.teams = teams
