"""Routes for channels: create, read, edit, archive, and the channel lists clients load (members:
`api/channel_members.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import (
    JSONResponse,
    created,
    field,
    id_list,
    ok,
    optional_field,
    paging,
    path_id,
    query_bool,
    query_int,
    read_list,
    read_object,
)
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import AppError, bad_body, bad_param
from hubbub.ids import is_valid_id
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_lists import ChannelDirectory
from hubbub.services.channels import ChannelPatch, ChannelsService, ChannelUpdate, NewChannel


class ChannelRoutes:
    def __init__(
        self,
        settings: Settings,
        channels: ChannelsService,
        access: ChannelAccess,
        directory: ChannelDirectory,
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.access = access
        self.directory = directory

    def routes(self) -> list[BaseRoute]:
        c = "/channels/{channel_id}"
        t = "/teams/{team_id}/channels"
        u = "/users/{user_id}"
        return [
            Route("/channels", self.create_channel, methods=["POST"]),
            Route("/channels/direct", self.create_direct, methods=["POST"]),
            Route("/channels/group", self.create_group, methods=["POST"]),
            Route(c, self.get_channel, methods=["GET"]),
            Route(c, self.update_channel, methods=["PUT"]),
            Route(c, self.delete_channel, methods=["DELETE"]),
            Route(c + "/patch", self.patch_channel, methods=["PUT"]),
            Route(c + "/restore", self.restore_channel, methods=["POST"]),
            Route(c + "/stats", self.stats, methods=["GET"]),
            Route(t, self.public_channels, methods=["GET"]),
            Route(t + "/ids", self.public_by_ids, methods=["POST"]),
            Route(t + "/deleted", self.deleted_channels, methods=["GET"]),
            Route(t + "/search", self.search, methods=["POST"]),
            Route(t + "/name/{channel_name}", self.by_name, methods=["GET"]),
            Route(
                "/teams/name/{team_name}/channels/name/{channel_name}",
                self.by_team_name,
                methods=["GET"],
            ),
            Route(u + "/teams/{team_id}/channels", self.user_team_channels, methods=["GET"]),
            Route(u + "/channels", self.user_channels, methods=["GET"]),
        ]

    # Channels

    async def create_channel(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "channel")
        team_id = field(data, "team_id", str, "")
        if not is_valid_id(team_id):
            raise bad_param("team_id")
        new = NewChannel(
            team_id=team_id,
            type=field(data, "type", str, ""),
            name=field(data, "name", str, ""),
            display_name=field(data, "display_name", str, ""),
            header=field(data, "header", str, ""),
            purpose=field(data, "purpose", str, ""),
        )
        return created(await self.channels.create(session, new))

    async def create_direct(self, request: Request) -> Response:
        session = require_session(request)
        user_ids: list[str] = await read_list(request, "user_ids")
        return created(await self.channels.create_direct(session, user_ids))

    async def create_group(self, request: Request) -> Response:
        session = require_session(request)
        user_ids: list[str] = await read_list(request, "user_ids")
        return created(await self.channels.create_group(session, user_ids))

    async def get_channel(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.access.require_read(session, path_id(request, "channel_id")))

    async def patch_channel(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        data = await read_object(request, "channel")
        patch = ChannelPatch(
            name=optional_field(data, "name", str),
            display_name=optional_field(data, "display_name", str),
            header=optional_field(data, "header", str),
            purpose=optional_field(data, "purpose", str),
        )
        return JSONResponse(await self.channels.patch(session, channel_id, patch))

    async def update_channel(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        data = await read_object(request, "channel")
        if data.get("id") != channel_id:
            raise bad_param("channel_id")
        # A full update: `header` and `purpose` are blank when omitted, as in Mattermost.
        channel = ChannelUpdate(
            header=field(data, "header", str, ""),
            purpose=field(data, "purpose", str, ""),
            name=field(data, "name", str, ""),
            display_name=field(data, "display_name", str, ""),
            type=field(data, "type", str, ""),
        )
        return JSONResponse(await self.channels.update(session, channel_id, channel))

    async def delete_channel(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        if query_bool(request, "permanent"):
            raise AppError(
                "api.user.delete_channel.not_enabled.app_error",
                "Permanent channel deletion feature is not enabled. Please contact your System "
                "Administrator.",
                401,
            )
        await self.channels.archive(session, channel_id)
        return ok()

    async def restore_channel(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.channels.restore(session, path_id(request, "channel_id")))

    async def stats(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.directory.stats(session, path_id(request, "channel_id")))

    async def public_channels(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        page, per_page = paging(request)
        return JSONResponse(await self.directory.public_for_team(session, team_id, page, per_page))

    async def public_by_ids(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        ids = id_list(await read_list(request, "channel_ids"), "channel_ids")
        return JSONResponse(await self.directory.public_by_ids(session, team_id, ids))

    async def deleted_channels(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        page, per_page = paging(request)
        return JSONResponse(await self.directory.deleted_for_team(session, team_id, page, per_page))

    async def search(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        term = field(await read_object(request, "channel_search"), "term", str)
        if "\x00" in term:
            raise bad_body("term")
        return JSONResponse(await self.directory.search_team(session, team_id, term))

    async def by_name(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        name = request.path_params["channel_name"]
        include_deleted = query_bool(request, "include_deleted")
        return JSONResponse(await self.directory.by_name(session, team_id, name, include_deleted))

    async def by_team_name(self, request: Request) -> Response:
        session = require_session(request)
        p = request.path_params
        include_deleted = query_bool(request, "include_deleted")
        return JSONResponse(
            await self.directory.by_team_name(
                session, p["team_name"], p["channel_name"], include_deleted
            )
        )

    async def user_team_channels(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        return JSONResponse(
            await self.directory.for_user(
                session,
                user_id,
                team_id,
                include_deleted=query_bool(request, "include_deleted"),
                last_delete_at=query_int(request, "last_delete_at"),
            )
        )

    async def user_channels(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        return JSONResponse(
            await self.directory.for_user(
                session,
                user_id,
                None,
                include_deleted=query_bool(request, "include_deleted"),
                last_delete_at=query_int(request, "last_delete_at"),
            )
        )
