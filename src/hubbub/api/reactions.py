"""Routes for reactions: save, remove, and list them for one post or several."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, created, field, ok, path_id, read_list, read_object
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.services.reactions import ReactionsService


class ReactionRoutes:
    def __init__(self, settings: Settings, reactions: ReactionsService) -> None:
        self.settings = settings
        self.reactions = reactions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/posts/ids/reactions", self.bulk_reactions, methods=["POST"]),
            Route("/posts/{post_id}/reactions", self.post_reactions, methods=["GET"]),
            Route("/reactions", self.save_reaction, methods=["POST"]),
            Route(
                "/users/{user_id}/posts/{post_id}/reactions/{emoji_name}",
                self.delete_reaction,
                methods=["DELETE"],
            ),
        ]

    async def save_reaction(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "reaction")
        reaction = await self.reactions.save(
            session,
            field(data, "user_id", str),
            field(data, "post_id", str),
            field(data, "emoji_name", str),
        )
        return created(reaction)

    async def delete_reaction(self, request: Request) -> Response:
        session = require_session(request)
        await self.reactions.delete(
            session,
            user_id_param(request),
            path_id(request, "post_id"),
            request.path_params["emoji_name"],
        )
        return ok()

    async def post_reactions(self, request: Request) -> Response:
        session = require_session(request)
        found = await self.reactions.for_post(session, path_id(request, "post_id"))
        return JSONResponse(found)

    async def bulk_reactions(self, request: Request) -> Response:
        session = require_session(request)
        ids: list[str] = await read_list(request, "post_ids")
        return JSONResponse(await self.reactions.for_posts(session, ids))
