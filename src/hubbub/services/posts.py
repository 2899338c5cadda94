"""Posts, threads, history and reactions."""

from __future__ import annotations

from hubbub.cluster.events import EventPublisher
from hubbub.config import Settings
from hubbub.services.channels import ChannelsService
from hubbub.services.files import FilesService
from hubbub.services.users import UsersService
from hubbub.store.db import Database


class PostsService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        channels: ChannelsService,
        files: FilesService,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.users = users
        self.channels = channels
        self.files = files
