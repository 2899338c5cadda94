"""Routes for synced drafts: `POST /drafts`, `GET /users/{user_id}/teams/{team_id}/drafts`,
`DELETE /users/{user_id}/channels/{channel_id}/drafts[/{root_id}]`.

The `Connection-Id` header names the websocket connection of the device that made the change; it
does not get the draft event back.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, ok, path_id, read_json
from hubbub.api.params import user_id_param
from hubbub.errors import bad_param
from hubbub.services.drafts import DraftsService, NewDraft


def _draft(data: Any) -> NewDraft:
    if not isinstance(data, dict):
        raise bad_param("draft")
    strings = {k: data.get(k, "") for k in ("channel_id", "root_id", "message")}
    if not all(isinstance(v, str) for v in strings.values()):
        raise bad_param("draft")
    props = data.get("props") or {}
    file_ids = data.get("file_ids") or []
    priority = data.get("priority") or None
    create_at = data.get("create_at") or 0
    if (
        not isinstance(props, dict)
        or not isinstance(file_ids, list)
        or not all(isinstance(f, str) for f in file_ids)
        or not (priority is None or isinstance(priority, dict))
        or not isinstance(create_at, int)
        or isinstance(create_at, bool)
    ):
        raise bad_param("draft")
    return NewDraft(
        channel_id=strings["channel_id"],
        root_id=strings["root_id"],
        message=strings["message"],
        props=props,
        file_ids=tuple(file_ids),
        priority=priority,
        create_at=max(0, min(create_at, 2**62)),
    )


class DraftRoutes:
    def __init__(self, drafts: DraftsService) -> None:
        self.drafts = drafts

    def routes(self) -> list[BaseRoute]:
        channel = "/users/{user_id}/channels/{channel_id}/drafts"
        return [
            Route("/drafts", self.upsert, methods=["POST"]),
            Route("/users/{user_id}/teams/{team_id}/drafts", self.for_team, methods=["GET"]),
            Route(channel, self.delete, methods=["DELETE"]),
            Route(channel + "/{root_id}", self.delete, methods=["DELETE"]),
        ]

    async def upsert(self, request: Request) -> Response:
        session = require_session(request)
        self.drafts.check_enabled()
        new = _draft(await read_json(request, "draft"))
        draft = await self.drafts.upsert(session, new, request.headers.get("connection-id", ""))
        return JSONResponse(draft, 201)

    async def for_team(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        return JSONResponse(await self.drafts.for_team(session, user_id, team_id))

    async def delete(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        channel_id = path_id(request, "channel_id")
        root_id = path_id(request, "root_id") if "root_id" in request.path_params else ""
        await self.drafts.delete(
            session, user_id, channel_id, root_id, request.headers.get("connection-id", "")
        )
        return ok()
