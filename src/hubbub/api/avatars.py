"""Routes for profile pictures: `/users/{user_id}/image[/default]`.

The picture is a PNG cached for a day (private) with an ETag; the apps add
`?_=<last_picture_update>` to the URL, which the server ignores, so a new picture gets a new URL.
`POST` is multipart with one `image` part; the whole body is bounded by `FileSettings.MaxFileSize`.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import ok
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.services.avatars import AvatarsService

DAY = 24 * 60 * 60


def _png(data: bytes, etag: str | None = None) -> Response:
    headers = {"content-type": "image/png", "cache-control": f"max-age={DAY}, private"}
    if etag is not None:
        headers["etag"] = etag
    return Response(data, headers=headers)


def _too_large() -> AppError:
    return AppError(
        "api.user.upload_profile_user.too_large.app_error",
        "Unable to upload profile image. File is too large.",
        413,
    )


class AvatarRoutes:
    def __init__(self, settings: Settings, avatars: AvatarsService) -> None:
        self.settings = settings
        self.avatars = avatars

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/users/{user_id}/image", self.get, methods=["GET"]),
            Route("/users/{user_id}/image", self.upload, methods=["POST"]),
            Route("/users/{user_id}/image", self.reset, methods=["DELETE"]),
            Route("/users/{user_id}/image/default", self.get_default, methods=["GET"]),
        ]

    async def get(self, request: Request) -> Response:
        require_session(request)
        picture = await self.avatars.picture(user_id_param(request))
        if picture.etag is not None and request.headers.get("if-none-match") == picture.etag:
            return Response(status_code=304, headers={"etag": picture.etag})
        return _png(picture.data, picture.etag)

    async def get_default(self, request: Request) -> Response:
        require_session(request)
        return _png(await self.avatars.default_picture(user_id_param(request)))

    async def upload(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        await self.avatars.require_edit(session, user_id)
        limit = self.settings.FileSettings.MaxFileSize
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large()
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise AppError(
                "api.user.upload_profile_user.parse.app_error",
                "Could not parse multipart form.",
                400,  # Mattermost answers 500; a malformed upload is the client's error
            )
        try:
            async with request.form(max_files=2, max_fields=2) as form:
                parts = [p for p in form.getlist("image") if isinstance(p, UploadFile)]
                data = await parts[0].read() if parts else None
        except AppError:
            raise
        except Exception:
            raise AppError(
                "api.user.upload_profile_user.parse.app_error",
                "Could not parse multipart form.",
                400,  # Mattermost answers 500; a malformed upload is the client's error
            ) from None
        if data is None:
            raise AppError(
                "api.user.upload_profile_user.no_file.app_error",
                "No file under 'image' in request.",
                400,
            )
        if len(data) > limit:
            raise _too_large()
        await self.avatars.upload(session, user_id, data)
        return ok()

    async def reset(self, request: Request) -> Response:
        session = require_session(request)
        await self.avatars.reset(session, user_id_param(request))
        return ok()
