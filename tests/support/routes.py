"""The application's routing table as `"METHOD /path"` keys (`"WS /path"` for websockets), read
from a node that is built but not started, for tests that must cover every route: the API under
/api/v4, and the pages and files outside it."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from hubbub.app import Hubbub
from hubbub.config import load_config


def _app(workdir: Path, environ: dict[str, str] | None = None) -> Starlette:
    config = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DATASOURCE": str(workdir / "routes.db"),
            "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
            **(environ or {}),
        },
    )
    app: object = Hubbub(config, join_cluster=False).asgi
    while not isinstance(app, Starlette):
        app = app.app  # type: ignore[attr-defined]  # the middleware layers in front
    return app


def _keys(route: object) -> list[str]:
    if isinstance(route, Route):
        return [f"{m} {route.path}" for m in sorted((route.methods or set()) - {"HEAD"})]
    if isinstance(route, WebSocketRoute):
        return [f"WS {route.path}"]
    raise AssertionError(f"a route of an unknown kind: {route!r}")


def page_route_keys(workdir: Path, webapp_directory: str = "") -> list[str]:
    """Every route outside /api/v4 (hubbub's pages, or with `webapp_directory` a bundle's)."""
    environ = {"MM_SERVICESETTINGS_WEBAPPDIRECTORY": webapp_directory} if webapp_directory else {}
    keys: list[str] = []
    for route in _app(workdir, environ).routes:
        if not (isinstance(route, Mount) and route.path == "/api/v4"):
            keys += _keys(route)
    return keys


def api_route_keys(workdir: Path) -> list[str]:
    """Every route under /api/v4 (HEAD, which Starlette adds to GET, left out)."""
    keys: list[str] = []
    for mount in _app(workdir).routes:
        if not (isinstance(mount, Mount) and mount.path == "/api/v4"):
            continue
        for route in mount.routes:
            keys += _keys(route)
    return keys


def api_routes(workdir: Path) -> list[BaseRoute]:
    """The route objects under /api/v4, in the table's order."""
    for mount in _app(workdir).routes:
        if isinstance(mount, Mount) and mount.path == "/api/v4":
            return list(mount.routes)
    raise AssertionError("no /api/v4 mount")
