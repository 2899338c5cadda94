"""The pages a browser gets: hubbub's web client at `/` and the operator console at `/admin`, or
the official Mattermost web app when `ServiceSettings.WebappDirectory` names its bundle.

hubbub's own files (`static/` beside this module) are read once at start-up and served under
`/_hubbub/<digest>/`, where the digest covers every file: an upgrade changes the prefix, so the
files can be cached for a year and a browser never mixes modules of two versions. The pages
themselves are revalidated on every load (ETag) and carry a strict Content-Security-Policy: only
scripts and styles from this origin, no inline script, no plugins, no framing.

With a bundle (the `client/` folder of a Mattermost release) the routes follow Mattermost's own
web server: `/static/...` are the bundle's files with long cache headers, `/robots.txt` keeps
crawlers out, and every other GET outside `/api/` is the app's `root.html` (the app routes
`/login`, `/{team}/channels/{channel}`, `/{team}/pl/{post_id}` itself). The console stays at
`/admin` in both cases. `/api/v4/...` is mounted before these routes and never reaches them.

`/admin` is answered with 403 to someone signed in who is not a system admin (the page still
says "Forbidden" in words); with no session it is the page, which asks to log in.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import optional_session
from hubbub.errors import AppError
from hubbub.services.permissions import MANAGE_SYSTEM, Permissions

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/_hubbub/"
# In the pages, replaced by `/_hubbub/<digest>/` when they are loaded.
ASSETS_PLACEHOLDER = b"%ASSETS%"

# hubbub's pages: scripts and styles from this origin only (no inline script, no eval), images
# from here (thumbnails) or data: URLs, fetch and the websocket to this origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The official app's root.html: Mattermost's own framing rule; its scripts are its business.
BUNDLE_CSP = "frame-ancestors 'self'"
YEAR = "max-age=31556926, public"
REVALIDATE = "no-cache"
ROBOTS = b"User-agent: *\nDisallow: /\n"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


def media_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


class Assets:
    """hubbub's client files, read once; `prefix` carries a digest of all of them."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        whole = hashlib.sha256()
        raw: dict[str, bytes] = {}
        for path in files:
            name = path.relative_to(root).as_posix()
            raw[name] = path.read_bytes()
            whole.update(name.encode() + b"\0" + raw[name] + b"\0")
        self.digest = whole.hexdigest()[:16]
        self.prefix = f"{ASSETS_PREFIX}{self.digest}/"
        self.files: dict[str, Asset] = {}
        for name, body in raw.items():
            if name.endswith(".html"):
                body = body.replace(ASSETS_PLACEHOLDER, self.prefix.encode())
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            self.files[name] = Asset(body, media_type(name), etag)

    def get(self, name: str) -> Asset | None:
        return self.files.get(name)


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return etag in {tag.strip() for tag in header.split(",")} or header.strip() == "*"


class WebRoutes:
    """The routes outside `/api/v4`: hubbub's pages and files, or the official app's bundle."""

    def __init__(
        self,
        permissions: Permissions,
        webapp_directory: str = "",
        assets: Assets | None = None,
    ) -> None:
        self.permissions = permissions
        self.assets = assets or Assets()
        self.bundle = Path(webapp_directory).resolve() if webapp_directory else None

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/admin", self.console_page, methods=["GET"]),
            Route("/admin/", self.console_page, methods=["GET"]),
            Route(ASSETS_PREFIX + "{digest}/{name:path}", self.asset, methods=["GET"]),
        ]
        if self.bundle is None:
            return [*routes, Route("/", self.client_page, methods=["GET"])]
        return [
            *routes,
            Route("/static/{name:path}", self.bundle_file, methods=["GET"]),
            Route("/robots.txt", self.robots, methods=["GET"]),
            Route("/{anything:path}", self.bundle_root, methods=["GET"]),
        ]

    # hubbub's own client and console

    def _page(self, request: Request, name: str, status: int = 200) -> Response:
        asset = self.assets.get(name)
        if asset is None:
            raise AppError("web.page.missing.app_error", f"The page {name} is missing.", 500)
        headers = {
            "ETag": asset.etag,
            "Cache-Control": REVALIDATE,
            "Content-Security-Policy": PAGE_CSP,
            "X-Frame-Options": "DENY",
        }
        if status == 200 and _not_modified(request, asset.etag):
            return Response(status_code=304, headers=headers)
        return Response(
            asset.body, status_code=status, headers={**headers, "Content-Type": asset.media_type}
        )

    async def client_page(self, request: Request) -> Response:
        return self._page(request, "index.html")

    async def console_page(self, request: Request) -> Response:
        session = optional_session(request)
        if session is not None and not await self.permissions.has(session, MANAGE_SYSTEM):
            return self._page(request, "admin.html", 403)
        return self._page(request, "admin.html")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        found = self.assets.get(name)
        if found is None or name.endswith(".html"):
            return _plain_not_found()
        # A page of another version (a rolling upgrade behind a load balancer) may ask for
        # files under its own digest: answer with ours, but do not let it be cached for long.
        current = request.path_params["digest"] == self.assets.digest
        cache = YEAR + ", immutable" if current else REVALIDATE
        headers = {"ETag": found.etag, "Cache-Control": cache}
        if _not_modified(request, found.etag):
            return Response(status_code=304, headers=headers)
        return Response(found.body, headers={**headers, "Content-Type": found.media_type})

    # The official web app's bundle

    def _bundle_path(self, name: str) -> Path | None:
        """The file `name` inside the bundle, or None (missing, a folder, or outside it)."""
        assert self.bundle is not None
        if not name or name.endswith("/"):
            return None
        path = (self.bundle / name).resolve()
        if not path.is_relative_to(self.bundle) or not path.is_file():
            return None
        return path

    async def bundle_file(self, request: Request) -> Response:
        path = self._bundle_path(request.path_params["name"])
        if path is None:
            return _plain_not_found()
        stat = path.stat()
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        headers = {"ETag": etag, "Cache-Control": YEAR}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, headers=headers, media_type=media_type(path.name))

    async def robots(self, request: Request) -> Response:
        return Response(ROBOTS, media_type="text/plain")

    async def bundle_root(self, request: Request) -> Response:
        if request.url.path.startswith("/api/"):
            raise AppError("api.context.404.app_error", "Sorry, we could not find the page.", 404)
        assert self.bundle is not None
        try:
            body = await asyncio.to_thread((self.bundle / "root.html").read_bytes)
        except OSError:
            return _plain_not_found()
        return Response(
            body,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": "no-cache, " + YEAR,
                "Content-Security-Policy": BUNDLE_CSP,
            },
        )


def _plain_not_found() -> Response:
    return Response(
        b"404 page not found\n",
        status_code=404,
        headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache, public"},
    )
