"""Routes for custom emoji: `/emoji[...]`.

`POST /emoji` is multipart: an `image` part and an `emoji` field holding the Emoji JSON
(`{"name": ..., "creator_id": ...}`). A body above 512 KiB is refused before it is parsed, as
Mattermost does. The specific paths come before `/emoji/{emoji_id}`.
"""

from __future__ import annotations

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.files import FILE_CSP
from hubbub.api.http import JSONResponse, ok, paging, path_id, read_json, read_object
from hubbub.errors import AppError, bad_param
from hubbub.services.emoji import (
    AUTOCOMPLETE_LIMIT,
    MAX_EMOJI_FILE_SIZE,
    SEARCH_LIMIT,
    EmojiService,
    NewEmoji,
)


def _too_large() -> AppError:
    return AppError(
        "api.emoji.create.too_large.app_error",
        "Unable to create emoji. Image must be less than 1 MB in size.",
        413,
    )


class EmojiRoutes:
    def __init__(self, emoji: EmojiService) -> None:
        self.emoji = emoji

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/emoji", self.create, methods=["POST"]),
            Route("/emoji", self.list_page, methods=["GET"]),
            Route("/emoji/search", self.search, methods=["POST"]),
            Route("/emoji/autocomplete", self.autocomplete, methods=["GET"]),
            Route("/emoji/names", self.by_names, methods=["POST"]),
            Route("/emoji/name/{emoji_name}", self.by_name, methods=["GET"]),
            Route("/emoji/{emoji_id}", self.get, methods=["GET"]),
            Route("/emoji/{emoji_id}", self.delete, methods=["DELETE"]),
            Route("/emoji/{emoji_id}/image", self.image, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        session = require_session(request)
        self.emoji.check_enabled()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_EMOJI_FILE_SIZE:
            raise _too_large()
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise AppError(
                "api.emoji.create.parse.app_error",
                "Unable to create emoji. Could not understand request.",
                400,
            )
        try:
            async with request.form(max_files=2, max_fields=4) as form:
                raw = form.get("emoji")
                part = form.get("image")
                image = await part.read() if isinstance(part, UploadFile) else None
        except AppError:
            raise
        except Exception:
            raise AppError(
                "api.emoji.create.parse.app_error",
                "Unable to create emoji. Could not understand request.",
                400,
            ) from None
        if len(image or b"") > MAX_EMOJI_FILE_SIZE:
            raise _too_large()
        if not isinstance(raw, str) or not raw:
            raise bad_param("emoji")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise bad_param("emoji") from None
        if not isinstance(data, dict):
            raise bad_param("emoji")
        name, creator = data.get("name", ""), data.get("creator_id", "")
        if not isinstance(name, str) or not isinstance(creator, str):
            raise bad_param("emoji")
        if image is None:
            raise AppError(
                "api.context.invalid_body_param.app_error",
                "Invalid or missing image in request body.",
                400,
            )
        created = await self.emoji.create(session, NewEmoji(name, creator, image))
        return JSONResponse(created)

    async def list_page(self, request: Request) -> Response:
        require_session(request)
        page, per_page = paging(request)
        sort = request.query_params.get("sort", "")
        return JSONResponse(await self.emoji.list_page(page, per_page, sort))

    async def search(self, request: Request) -> Response:
        require_session(request)
        data = await read_object(request, "term")
        term = data.get("term", "")
        if not isinstance(term, str) or not term:
            raise bad_param("term")
        prefix_only = bool(data.get("prefix_only", False))
        return JSONResponse(await self.emoji.search(term, prefix_only, SEARCH_LIMIT))

    async def autocomplete(self, request: Request) -> Response:
        require_session(request)
        name = request.query_params.get("name", "")
        if not name:
            raise bad_param("name", "api.context.invalid_url_param")
        return JSONResponse(await self.emoji.search(name, True, AUTOCOMPLETE_LIMIT))

    async def by_names(self, request: Request) -> Response:
        require_session(request)
        names = await read_json(request, "names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AppError(
                "api.payload.parse.error", "Unable to parse the payload of the request.", 400
            )
        return JSONResponse(await self.emoji.by_names(names))

    async def by_name(self, request: Request) -> Response:
        require_session(request)
        name = str(request.path_params.get("emoji_name", ""))
        if not name or len(name) > 64:
            raise bad_param("emoji_name", "api.context.invalid_url_param")
        return JSONResponse(await self.emoji.by_name(name))

    async def get(self, request: Request) -> Response:
        require_session(request)
        return JSONResponse(await self.emoji.get(path_id(request, "emoji_id")))

    async def delete(self, request: Request) -> Response:
        session = require_session(request)
        await self.emoji.delete(session, path_id(request, "emoji_id"))
        return ok()

    async def image(self, request: Request) -> Response:
        require_session(request)
        data, mime = await self.emoji.image(path_id(request, "emoji_id"))
        return Response(
            data,
            headers={
                "content-type": mime,
                "cache-control": "max-age=2592000, private",
                "x-content-type-options": "nosniff",
                "x-frame-options": "DENY",
                "content-security-policy": FILE_CSP,
            },
        )
