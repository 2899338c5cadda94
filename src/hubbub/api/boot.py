"""Small endpoints the official apps call on every load, answered as an unlicensed Mattermost
server with no plugins, no product notices and no user limit would answer them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, ok, path_id, read_json
from hubbub.errors import AppError, forbidden
from hubbub.services.permissions import Permissions
from hubbub.services.server_info import ServerInfo

READ_PLUGINS = "sysconsole_read_plugins"


class BootRoutes:
    def __init__(self, info: ServerInfo, permissions: Permissions) -> None:
        self.info = info
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/limits/server", self.server_limits, methods=["GET"]),
            Route("/users/stats", self.user_stats, methods=["GET"]),
            Route("/plugins/webapp", self.webapp_plugins, methods=["GET"]),
            Route("/plugins/statuses", self.plugin_statuses, methods=["GET"]),
            Route("/plugins", self.plugins, methods=["GET"]),
            Route("/system/notices/view", self.notices_viewed, methods=["PUT"]),
            Route("/system/notices/{team_id}", self.notices, methods=["GET"]),
            Route("/trial-license/prev", self.previous_trial, methods=["GET"]),
            Route("/client_perf", self.client_perf, methods=["POST"]),
        ]

    async def server_limits(self, request: Request) -> Response:
        """No user cap (0 means none). The active user count is for admins only."""
        session = require_session(request)
        active = 0
        if await self.permissions.has(session, "sysconsole_read_user_management_users"):
            active = await self.info.active_users()
        return JSONResponse(
            {
                "maxUsersLimit": 0,
                "maxUsersHardLimit": 0,
                "activeUserCount": active,
                "singleChannelGuestCount": 0,
                "singleChannelGuestLimit": 0,
                "postHistoryLimit": 0,
                "lastAccessiblePostTime": 0,
            }
        )

    async def user_stats(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse({"total_users_count": await self.info.active_users()})

    async def webapp_plugins(self, request: Request) -> Response:
        # No session needed: the web app asks before anyone logs in.
        return JSONResponse([])

    async def plugin_statuses(self, request: Request) -> Response:
        session = require_session(request)
        if not await self.permissions.has(session, READ_PLUGINS):
            raise forbidden(READ_PLUGINS)
        return JSONResponse([])

    async def plugins(self, request: Request) -> Response:
        session = require_session(request)
        if not await self.permissions.has(session, READ_PLUGINS):
            raise forbidden(READ_PLUGINS)
        return JSONResponse({"active": [], "inactive": []})

    async def notices(self, request: Request) -> Response:
        require_session(request)
        path_id(request, "team_id")
        return JSONResponse([])

    async def notices_viewed(self, request: Request) -> Response:
        require_session(request)
        ids = await read_json(request, "notice_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise AppError(
                "api.context.invalid_body_param.app_error",
                "Invalid or missing notice_ids in request body.",
                400,
            )
        return ok()

    async def previous_trial(self, request: Request) -> Response:
        """There never was a trial licence: Mattermost's client licence for none."""
        require_session(request)
        return JSONResponse({"IsLicensed": "false"})

    async def client_perf(self, request: Request) -> Response:
        require_session(request)
        report = await read_json(request, "report")
        if not isinstance(report, dict):
            raise AppError(
                "api.context.invalid_body_param.app_error",
                "Invalid or missing report in request body.",
                400,
            )
        samples = 0
        for key in ("counters", "histograms"):
            values = report.get(key)
            if isinstance(values, list):
                samples += len(values)
        self.info.record_client_report(samples)
        return ok()
