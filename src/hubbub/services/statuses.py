"""User statuses (online, away, dnd, offline)."""

from __future__ import annotations

from hubbub.config import Settings
from hubbub.store.db import Database


class StatusesService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
