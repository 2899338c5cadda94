"""hubbub's operator console API: `GET /api/v4/hubbub/console` (system admins only).

One answer with everything `/admin` draws: every node green, yellow or red with the reasons in
words, the leader, the data tier and the websocket figures per node
(`hubbub.observability.console`). Mattermost has no such endpoint; the `hubbub/` segment keeps it
apart from Mattermost's paths.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_permission
from hubbub.api.http import JSONResponse
from hubbub.observability.console import OperatorConsole
from hubbub.services.permissions import Permissions


class AdminRoutes:
    def __init__(self, console: OperatorConsole, permissions: Permissions) -> None:
        self.console = console
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [Route("/hubbub/console", self.console_view, methods=["GET"])]

    async def console_view(self, request: Request) -> Response:
        await require_permission(request, self.permissions, "manage_system")
        return JSONResponse(await self.console.view())
