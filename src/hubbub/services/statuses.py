"""User statuses (online, away, dnd, offline)."""

from __future__ import annotations

from hubbub.cluster.events import EventPublisher
from hubbub.config import Settings
from hubbub.store.db import Database


class StatusesService:
    def __init__(self, db: Database, settings: Settings, events: EventPublisher) -> None:
        self.db = db
        self.settings = settings
        self.events = events
