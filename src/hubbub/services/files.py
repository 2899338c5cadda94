"""File uploads, file infos, thumbnails and previews."""

from __future__ import annotations

from hubbub.cluster.events import EventPublisher
from hubbub.config import Settings
from hubbub.files import FileBackend
from hubbub.services.channels import ChannelsService
from hubbub.store.db import Database


class FilesService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        backend: FileBackend,
        channels: ChannelsService,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.backend = backend
        self.channels = channels
