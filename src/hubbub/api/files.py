"""Routes for file uploads and downloads, and the file infos of a post.

Files are other people's content served from this site's origin, so every answer is built to
stay inert (`file_response`): an attachment unless it is a raster image, the stored type with
no sniffing, and a Content-Security-Policy that sandboxes it."""

from __future__ import annotations

from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, created, path_id, query_bool
from hubbub.config import Settings
from hubbub.errors import AppError, bad_param
from hubbub.ids import is_valid_id
from hubbub.services.files import FileContent, FilesService, Upload

MAX_FILES_PER_REQUEST = 100
# The only types a browser may show in place: raster images, which cannot run script. Anything
# else (HTML, SVG, PDF, text, video...) is always sent as an attachment, so an uploaded file can
# never become a page of this site (stored XSS); `<img>` and `<video>` elements still load them.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
# On every file, preview and thumbnail: nothing it contains may load or run anything, even if a
# browser opened it as a document (`sandbox`: an opaque origin without scripts), and no other
# site may frame it.
FILE_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


def content_disposition(kind: str, name: str) -> str:
    """`attachment` or `inline` with an ASCII fallback name and the exact UTF-8 name."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"{kind};filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(content: FileContent, download: bool) -> Response:
    inline = not download and content.mime_type in INLINE_TYPES
    return Response(
        content.data,
        headers={
            # Set here rather than as media_type: Starlette would add a charset to text types.
            "content-type": content.mime_type,
            "content-disposition": content_disposition(
                "inline" if inline else "attachment", content.name
            ),
            "cache-control": "max-age=2592000, private",
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "content-security-policy": FILE_CSP,
        },
    )


class FileRoutes:
    def __init__(self, settings: Settings, files: FilesService) -> None:
        self.settings = settings
        self.files = files

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/files", self.upload, methods=["POST"]),
            Route("/files/{file_id}", self.get_file, methods=["GET"]),
            Route("/files/{file_id}/info", self.get_info, methods=["GET"]),
            Route("/files/{file_id}/thumbnail", self.get_thumbnail, methods=["GET"]),
            Route("/files/{file_id}/preview", self.get_preview, methods=["GET"]),
            Route("/posts/{post_id}/files/info", self.post_infos, methods=["GET"]),
        ]

    async def upload(self, request: Request) -> Response:
        """Multipart (`channel_id`, `files` parts, optional `client_ids`) or, as Mattermost also
        accepts, the raw bytes of one file with `?channel_id=&filename=`."""
        session = require_session(request)
        self.files.check_enabled()
        content_type = request.headers.get("content-type", "")
        channel_id = request.query_params.get("channel_id", "")
        client_ids: list[str] = []
        uploads: list[Upload] = []
        if content_type.lower().startswith("multipart/form-data"):
            async with request.form(
                max_files=MAX_FILES_PER_REQUEST, max_fields=2 * MAX_FILES_PER_REQUEST
            ) as form:
                form_channel = form.get("channel_id")
                if isinstance(form_channel, str) and form_channel:
                    channel_id = form_channel
                client_ids = [v for v in form.getlist("client_ids") if isinstance(v, str)]
                for part in form.getlist("files"):
                    if not isinstance(part, UploadFile):
                        raise bad_param("files")
                    name = part.filename or ""
                    self.files.check_size(name, part.size or 0)
                    uploads.append(Upload(name, await part.read()))
        else:
            filename = request.query_params.get("filename", "")
            if not filename:
                raise bad_param("filename")
            data = await request.body()
            if data:
                self.files.check_size(filename, len(data))
                uploads.append(Upload(filename, data))
        if not is_valid_id(channel_id):
            raise bad_param("channel_id")
        if client_ids and len(client_ids) != len(uploads):
            raise AppError(
                "api.file.upload_file.incorrect_number_of_client_ids.app_error",
                f"Unable to upload files. Have {len(client_ids)} client_ids for "
                f"{len(uploads)} files.",
                400,
            )
        infos = await self.files.upload(session, channel_id, uploads)
        return created({"file_infos": infos, "client_ids": client_ids})

    async def get_file(self, request: Request) -> Response:
        session = require_session(request)
        content = await self.files.content(session, path_id(request, "file_id"))
        return file_response(content, query_bool(request, "download"))

    async def get_info(self, request: Request) -> Response:
        session = require_session(request)
        return JSONResponse(await self.files.info(session, path_id(request, "file_id")))

    async def get_thumbnail(self, request: Request) -> Response:
        session = require_session(request)
        content = await self.files.thumbnail(session, path_id(request, "file_id"))
        return file_response(content, query_bool(request, "download"))

    async def get_preview(self, request: Request) -> Response:
        session = require_session(request)
        content = await self.files.preview(session, path_id(request, "file_id"))
        return file_response(content, query_bool(request, "download"))

    async def post_infos(self, request: Request) -> Response:
        session = require_session(request)
        post_id = path_id(request, "post_id")
        include_deleted = query_bool(request, "include_deleted")
        return JSONResponse(await self.files.infos_for_post(session, post_id, include_deleted))
