"""Cluster endpoints: `GET /api/v4/cluster/status` (system admins only).

The answer is Mattermost's `ClusterInfo` list (id, version, schema_version, config_hash, ipaddress,
hostname) with hubbub's additions per node: port, node_name, last_heartbeat, started_at,
websocket_connections, leader, status (`ok` | `mismatch` | `stale`) and reasons. Without
`ClusterSettings.Enable` the list holds just the answering node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_permission
from hubbub.api.http import JSONResponse
from hubbub.services.permissions import Permissions

StatusView = Callable[[], Awaitable[list[dict[str, Any]]]]


class ClusterRoutes:
    def __init__(self, status_view: StatusView, permissions: Permissions) -> None:
        self.status_view = status_view
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [Route("/cluster/status", self.status, methods=["GET"])]

    async def status(self, request: Request) -> Response:
        # Mattermost's permission for the cluster status (the console's High Availability page).
        await require_permission(
            request, self.permissions, "sysconsole_read_environment_high_availability"
        )
        return JSONResponse(await self.status_view())
