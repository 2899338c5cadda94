"""Post search with the database's full-text search."""

from __future__ import annotations

from hubbub.config import Settings
from hubbub.services.channels import ChannelsService
from hubbub.services.posts import PostsService
from hubbub.services.users import UsersService
from hubbub.store.db import Database


class SearchService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        channels: ChannelsService,
        posts: PostsService,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.channels = channels
        self.posts = posts
