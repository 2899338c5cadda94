"""Routes for file uploads and downloads."""

from __future__ import annotations

from starlette.routing import BaseRoute

from hubbub.config import Settings
from hubbub.services.channels import ChannelsService
from hubbub.services.files import FilesService


class FileRoutes:
    def __init__(self, settings: Settings, files: FilesService, channels: ChannelsService) -> None:
        self.settings = settings
        self.files = files
        self.channels = channels

    def routes(self) -> list[BaseRoute]:
        return []
