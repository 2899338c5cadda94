"""Operator actions: `POST /api/v4/config/reload` and `POST /api/v4/database/recycle`.

System admins only (Mattermost's `reload_config` and `recycle_database_connections`
permissions, from roles), answering Mattermost's `{"status":"OK"}`. Unlike Mattermost, both act on
every node: this one first, the others through the cluster bus (`config/live.py`,
`store/recycle.py`). A reloaded config.json that does not validate is refused with 500
`api.config.reload_config.app_error` naming the key path, and the running configuration stays.
The reload answer also lists the changed settings now in effect (`applied`) and those that need
a restart (`restart_required`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_permission
from hubbub.api.http import JSONResponse
from hubbub.config.live import ConfigSync
from hubbub.config.loader import ConfigError
from hubbub.errors import AppError
from hubbub.services.permissions import Permissions
from hubbub.store.recycle import DatabaseRecycler

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate"}


class OperationRoutes:
    def __init__(
        self, config_sync: ConfigSync, recycler: DatabaseRecycler, permissions: Permissions
    ) -> None:
        self.config_sync = config_sync
        self.recycler = recycler
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/config/reload", self.reload_config, methods=["POST"]),
            Route("/database/recycle", self.recycle_database, methods=["POST"]),
        ]

    async def reload_config(self, request: Request) -> Response:
        await require_permission(request, self.permissions, "reload_config")
        try:
            result = await self.config_sync.reload_everywhere()
        except ConfigError as exc:
            raise AppError(
                "api.config.reload_config.app_error",
                f"Failed to reload the configuration: {exc}",
                500,
                detailed_error=str(exc),
            ) from None
        body = {
            "status": "OK",
            "config_hash": result.hash,
            "applied": result.applied,
            "restart_required": result.restart_required,
        }
        return JSONResponse(body, headers=NO_CACHE)

    async def recycle_database(self, request: Request) -> Response:
        await require_permission(request, self.permissions, "recycle_database_connections")
        await self.recycler.recycle_everywhere()
        return JSONResponse({"status": "OK"}, headers=NO_CACHE)
