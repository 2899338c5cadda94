"""Routes for posts, threads, history, and reactions."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.channels import ChannelsService
from hubbub.services.posts import PostsService


class PostRoutes:
    def __init__(
        self,
        settings: Settings,
        posts: PostsService,
        channels: ChannelsService,
    ) -> None:
        self.settings = settings
        self.posts = posts
        self.channels = channels

    def routes(self) -> list[BaseRoute]:
        return []
