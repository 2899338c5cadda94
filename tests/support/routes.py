"""The application's routing table as `"METHOD /path"` keys (`"WS /path"` for websockets), read
from a node that is built but not started, for tests that must cover every route."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

from hubbub.app import Hubbub
from hubbub.config import load_config


def api_route_keys(workdir: Path) -> list[str]:
    """Every route under /api/v4 (HEAD, which Starlette adds to GET, left out)."""
    config = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DATASOURCE": str(workdir / "routes.db"),
            "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        },
    )
    app: object = Hubbub(config, join_cluster=False).asgi
    while not isinstance(app, Starlette):
        app = app.app  # type: ignore[attr-defined]  # the middleware layers in front
    keys: list[str] = []
    for mount in app.routes:
        if not (isinstance(mount, Mount) and mount.path == "/api/v4"):
            continue
        for route in mount.routes:
            if isinstance(route, Route):
                keys += [f"{m} {route.path}" for m in sorted((route.methods or set()) - {"HEAD"})]
            elif isinstance(route, WebSocketRoute):
                keys.append(f"WS {route.path}")
            else:
                raise AssertionError(f"a route of an unknown kind: {route!r}")
    return keys
