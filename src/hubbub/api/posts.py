"""Routes for posts, threads, history, reactions and search."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.channels import ChannelsService
from hubbub.services.posts import PostsService
from hubbub.services.search import SearchService


class PostRoutes:
    def __init__(
        self,
        settings: Settings,
        posts: PostsService,
        channels: ChannelsService,
        search: SearchService,
    ) -> None:
        self.settings = settings
        self.posts = posts
        self.channels = channels
        self.search = search

    def routes(self) -> list[BaseRoute]:
        return []
