"""Routes for channels and channel members."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import (
    STATUS_OK,
    JSONResponse,
    created,
    field,
    ok,
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
from hubbub.services.channels import ChannelsService
from hubbub.services.teams import TeamsService
from hubbub.services.users import UsersService

MAX_LIST = 1000


def _ids(values: list[str], name: str) -> list[str]:
    if not values or len(values) > MAX_LIST or not all(is_valid_id(v) for v in values):
        raise bad_param(name)
    return values


class ChannelRoutes:
    def __init__(
        self,
        settings: Settings,
        channels: ChannelsService,
        teams: TeamsService,
        users: UsersService,
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.teams = teams
        self.users = users

    def routes(self) -> list[BaseRoute]:
        c = "/channels/{channel_id}"
        m = c + "/members/{user_id}"
        t = "/teams/{team_id}/channels"
        u = "/users/{user_id}"
        return [
            Route("/channels", self.create_channel, methods=["POST"]),
            Route("/channels/direct", self.create_direct, methods=["POST"]),
            Route("/channels/group", self.create_group, methods=["POST"]),
            Route("/channels/members/{user_id}/view", self.view, methods=["POST"]),
            Route(c, self.get_channel, methods=["GET"]),
            Route(c, self.update_channel, methods=["PUT"]),
            Route(c, self.delete_channel, methods=["DELETE"]),
            Route(c + "/patch", self.patch_channel, methods=["PUT"]),
            Route(c + "/restore", self.restore_channel, methods=["POST"]),
            Route(c + "/stats", self.stats, methods=["GET"]),
            Route(c + "/members", self.list_members, methods=["GET"]),
            Route(c + "/members", self.add_members, methods=["POST"]),
            Route(c + "/members/ids", self.members_by_ids, methods=["POST"]),
            Route(m, self.get_member, methods=["GET"]),
            Route(m, self.remove_member, methods=["DELETE"]),
            Route(m + "/roles", self.update_roles, methods=["PUT"]),
            Route(m + "/notify_props", self.update_notify_props, methods=["PUT"]),
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
            Route(
                u + "/teams/{team_id}/channels/members",
                self.user_team_members,
                methods=["GET"],
            ),
            Route(u + "/channels", self.user_channels, methods=["GET"]),
            Route(u + "/channel_members", self.user_channel_members, methods=["GET"]),
            Route(u + "/channels/{channel_id}/unread", self.unread, methods=["GET"]),
        ]

    # Channels

    async def create_channel(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "channel")
        return created(await self.channels.create(session, data))

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
        return JSONResponse(
            await self.channels.require_read(session, path_id(request, "channel_id"))
        )

    async def patch_channel(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        patch = await read_object(request, "channel")
        return JSONResponse(await self.channels.patch(session, channel_id, patch))

    async def update_channel(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        data = await read_object(request, "channel")
        return JSONResponse(await self.channels.update(session, channel_id, data))

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
        return JSONResponse(
            await self.channels.directory.stats(session, path_id(request, "channel_id"))
        )

    async def public_channels(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        page, per_page = paging(request)
        return JSONResponse(
            await self.channels.directory.public_for_team(session, team_id, page, per_page)
        )

    async def public_by_ids(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        ids = _ids(await read_list(request, "channel_ids"), "channel_ids")
        return JSONResponse(await self.channels.directory.public_by_ids(session, team_id, ids))

    async def deleted_channels(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        page, per_page = paging(request)
        return JSONResponse(
            await self.channels.directory.deleted_for_team(session, team_id, page, per_page)
        )

    async def search(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        term = field(await read_object(request, "channel_search"), "term", str)
        if "\x00" in term:
            raise bad_body("term")
        return JSONResponse(await self.channels.directory.search_team(session, team_id, term))

    async def by_name(self, request: Request) -> Response:
        session = require_session(request)
        team_id = path_id(request, "team_id")
        name = request.path_params["channel_name"]
        include_deleted = query_bool(request, "include_deleted")
        return JSONResponse(
            await self.channels.directory.by_name(session, team_id, name, include_deleted)
        )

    async def by_team_name(self, request: Request) -> Response:
        session = require_session(request)
        p = request.path_params
        include_deleted = query_bool(request, "include_deleted")
        return JSONResponse(
            await self.channels.directory.by_team_name(
                session, p["team_name"], p["channel_name"], include_deleted
            )
        )

    async def user_team_channels(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        return JSONResponse(
            await self.channels.directory.for_user(
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
            await self.channels.directory.for_user(
                session,
                user_id,
                None,
                include_deleted=query_bool(request, "include_deleted"),
                last_delete_at=query_int(request, "last_delete_at"),
            )
        )

    # Members

    async def list_members(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        page, per_page = paging(request)
        return JSONResponse(await self.channels.members.page(session, channel_id, page, per_page))

    async def get_member(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        user_id = user_id_param(request)
        return JSONResponse(await self.channels.members.get(session, channel_id, user_id))

    async def members_by_ids(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        ids = _ids(await read_list(request, "user_ids"), "user_ids")
        return JSONResponse(await self.channels.members.by_ids(session, channel_id, ids))

    async def add_members(self, request: Request) -> Response:
        """Body `{user_id}` answers one ChannelMember, `{user_ids: [...]}` a list of them."""
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        data = await read_object(request, "channel_member")
        many = data.get("user_ids")
        if many is not None:
            if not isinstance(many, list) or not all(isinstance(u, str) for u in many):
                raise bad_param("user_ids")
            ids = _ids(list(dict.fromkeys(many)), "user_ids")
            return created(await self.channels.members.add(session, channel_id, ids))
        user_id = data.get("user_id")
        if not is_valid_id(user_id):
            raise bad_param("user_id")
        added = await self.channels.members.add(session, channel_id, [str(user_id)])
        return created(added[0])

    async def remove_member(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        await self.channels.members.remove(session, channel_id, user_id_param(request))
        return ok()

    async def update_roles(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        user_id = user_id_param(request)
        roles = field(await read_object(request, "roles"), "roles", str)
        await self.channels.members.update_roles(session, channel_id, user_id, roles)
        return ok()

    async def update_notify_props(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        user_id = user_id_param(request)
        props: dict[str, Any] = await read_object(request, "notify_props")
        await self.channels.members.update_notify_props(session, channel_id, user_id, props)
        return ok()

    async def view(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        data = await read_object(request, "channel_view")
        channel_id = field(data, "channel_id", str, "")
        field(data, "prev_channel_id", str, "")
        if channel_id and not is_valid_id(channel_id):
            raise bad_param("channel_id")
        times = await self.channels.members.view(session, user_id, channel_id)
        return JSONResponse({**STATUS_OK, "last_viewed_at_times": times})

    async def user_team_members(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        return JSONResponse(await self.channels.members.for_user_in_team(session, user_id, team_id))

    async def user_channel_members(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        page, per_page = paging(request)
        return JSONResponse(await self.channels.members.for_user(session, user_id, page, per_page))

    async def unread(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        channel_id = path_id(request, "channel_id")
        return JSONResponse(await self.channels.members.unread(session, user_id, channel_id))
