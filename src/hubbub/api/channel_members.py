"""Routes for channel membership: member lists, add and remove, roles, notification preferences,
"viewed" marks and unread counts."""

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
    id_list,
    ok,
    paging,
    path_id,
    read_list,
    read_object,
)
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import bad_param
from hubbub.ids import is_valid_id
from hubbub.services.channel_members import ChannelMembers


class ChannelMemberRoutes:
    def __init__(self, settings: Settings, members: ChannelMembers) -> None:
        self.settings = settings
        self.members = members

    def routes(self) -> list[BaseRoute]:
        c = "/channels/{channel_id}"
        m = c + "/members/{user_id}"
        u = "/users/{user_id}"
        return [
            Route("/channels/members/{user_id}/view", self.view, methods=["POST"]),
            Route(c + "/members", self.list_members, methods=["GET"]),
            Route(c + "/members", self.add_members, methods=["POST"]),
            Route(c + "/members/ids", self.members_by_ids, methods=["POST"]),
            Route(m, self.get_member, methods=["GET"]),
            Route(m, self.remove_member, methods=["DELETE"]),
            Route(m + "/roles", self.update_roles, methods=["PUT"]),
            Route(m + "/notify_props", self.update_notify_props, methods=["PUT"]),
            Route(
                u + "/teams/{team_id}/channels/members",
                self.user_team_members,
                methods=["GET"],
            ),
            Route(u + "/channel_members", self.user_channel_members, methods=["GET"]),
            Route(u + "/channels/{channel_id}/unread", self.unread, methods=["GET"]),
        ]

    async def list_members(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        page, per_page = paging(request)
        return JSONResponse(await self.members.page(session, channel_id, page, per_page))

    async def get_member(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        user_id = user_id_param(request)
        return JSONResponse(await self.members.get(session, channel_id, user_id))

    async def members_by_ids(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        ids = id_list(await read_list(request, "user_ids"), "user_ids")
        return JSONResponse(await self.members.by_ids(session, channel_id, ids))

    async def add_members(self, request: Request) -> Response:
        """Body `{user_id}` answers one ChannelMember, `{user_ids: [...]}` a list of them."""
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        data = await read_object(request, "channel_member")
        many = data.get("user_ids")
        if many is not None:
            if not isinstance(many, list) or not all(isinstance(u, str) for u in many):
                raise bad_param("user_ids")
            ids = id_list(list(dict.fromkeys(many)), "user_ids")
            return created(await self.members.add(session, channel_id, ids))
        user_id = data.get("user_id")
        if not is_valid_id(user_id):
            raise bad_param("user_id")
        added = await self.members.add(session, channel_id, [str(user_id)])
        return created(added[0])

    async def remove_member(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        await self.members.remove(session, channel_id, user_id_param(request))
        return ok()

    async def update_roles(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        user_id = user_id_param(request)
        roles = field(await read_object(request, "roles"), "roles", str)
        await self.members.update_roles(session, channel_id, user_id, roles)
        return ok()

    async def update_notify_props(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        user_id = user_id_param(request)
        props: dict[str, Any] = await read_object(request, "notify_props")
        await self.members.update_notify_props(session, channel_id, user_id, props)
        return ok()

    async def view(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        data = await read_object(request, "channel_view")
        channel_id = field(data, "channel_id", str, "")
        field(data, "prev_channel_id", str, "")
        if channel_id and not is_valid_id(channel_id):
            raise bad_param("channel_id")
        times = await self.members.view(session, user_id, channel_id)
        return JSONResponse({**STATUS_OK, "last_viewed_at_times": times})

    async def user_team_members(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        return JSONResponse(await self.members.for_user_in_team(session, user_id, team_id))

    async def user_channel_members(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        page, per_page = paging(request)
        return JSONResponse(await self.members.for_user(session, user_id, page, per_page))

    async def unread(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        channel_id = path_id(request, "channel_id")
        return JSONResponse(await self.members.unread(session, user_id, channel_id))
