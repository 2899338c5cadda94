"""Ops and boot endpoints: ping (the load balancer's health check) and the client license.

The client configuration is in `api/client_config.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import optional_session
from hubbub.api.http import JSONResponse, query_bool
from hubbub.config import Settings
from hubbub.files import FileBackend
from hubbub.services.permissions import Permissions
from hubbub.store.db import Database


class SystemRoutes:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        files: FileBackend,
        config_hash: str,
        is_draining: Callable[[], bool],
        permissions: Permissions,
        problems: Callable[[], list[str]] = list,
        degraded: Callable[[], list[str]] = list,
    ) -> None:
        self.permissions = permissions
        self.settings = settings
        self.db = db
        self.files = files
        self.config_hash = config_hash
        self.is_draining = is_draining
        self.problems = problems
        self.degraded = degraded

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/system/ping", self.ping, methods=["GET"]),
            Route("/license/client", self.client_license, methods=["GET"]),
        ]

    async def ping(self, request: Request) -> Response:
        body: dict[str, object] = {
            "status": "OK",
            "ActiveSearchBackend": "database",
            "AndroidLatestVersion": "",
            "AndroidMinVersion": "",
            "IosLatestVersion": "",
            "IosMinVersion": "",
        }
        headers: dict[str, str] = {}
        if request.query_params.get("device_id"):
            # The mobile app's push check: hubbub sends no push notifications, and a missing
            # answer would make the app believe it does.
            body["CanReceiveNotifications"] = "false"
        if query_bool(request, "get_server_status"):
            body["database_status"] = await self._probe(self.db.ping)
            body["filestore_status"] = await self._probe(self.files.check)
            session = optional_session(request)
            if session is not None and await self.permissions.has(session, "manage_system"):
                body["root_status"] = False
            for key in ("database_status", "filestore_status"):
                headers[key] = str(body[key])
            if "UNHEALTHY" in (body["database_status"], body["filestore_status"]):
                body["status"] = "UNHEALTHY"
        degraded = self.degraded()
        if degraded:
            # Still serving (REST works; events wait in the outbox): stay in the pool.
            body["degraded"] = degraded
        problems = self.problems()
        if problems:
            # The node cannot serve correctly (database or event bus unreachable, file store
            # not shared, ...): fail the load balancer's health check until it recovers.
            body["status"] = "UNHEALTHY"
            body["problems"] = problems
        if self.is_draining():
            body["status"] = "UNHEALTHY"
            body["draining"] = True
        headers["status"] = str(body["status"])
        code = 200
        if body["status"] != "OK" and not query_bool(request, "use_rest_semantics"):
            code = 500
        elif body["status"] != "OK":
            code = 503
        return JSONResponse(body, code, headers)

    @staticmethod
    async def _probe(check: Callable[[], Awaitable[object]]) -> str:
        try:
            await check()
        except Exception:
            return "UNHEALTHY"
        return "OK"

    async def client_license(self, request: Request) -> Response:
        return JSONResponse({"IsLicensed": "false"})
