"""`GET /api/v4/hubbub/doctor` (system admins only): this node's facts for `hubbub doctor`
(`hubbub.doctor.node_facts`). Like `/hubbub/console`, outside Mattermost's paths."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_permission
from hubbub.api.http import JSONResponse
from hubbub.doctor.node_facts import NodeFacts
from hubbub.services.permissions import Permissions


class DoctorRoutes:
    def __init__(self, facts: NodeFacts, permissions: Permissions) -> None:
        self.facts = facts
        self.permissions = permissions

    def routes(self) -> list[BaseRoute]:
        return [Route("/hubbub/doctor", self.node_facts, methods=["GET"])]

    async def node_facts(self, request: Request) -> Response:
        await require_permission(request, self.permissions, "manage_system")
        return JSONResponse(await self.facts.collect(dict(request.scope)))
