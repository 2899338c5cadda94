"""Teams and team membership."""

from __future__ import annotations

from hubbub.cluster.events import EventPublisher
from hubbub.config import Settings
from hubbub.services.users import UsersService
from hubbub.store.db import Database


class TeamsService:
    def __init__(
        self, db: Database, settings: Settings, users: UsersService, events: EventPublisher
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.users = users
