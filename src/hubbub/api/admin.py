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

from hubbub.api.auth import require_admin
from hubbub.api.http import JSONResponse
from hubbub.observability.console import OperatorConsole


class AdminRoutes:
    def __init__(self, console: OperatorConsole) -> None:
        self.console = console

    def routes(self) -> list[BaseRoute]:
        return [Route("/hubbub/console", self.console_view, methods=["GET"])]

    async def console_view(self, request: Request) -> Response:
        require_admin(request)
        return JSONResponse(await self.console.view())
