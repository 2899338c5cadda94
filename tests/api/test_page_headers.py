"""Every route outside `/api/v4` answers with the security headers, with hubbub's own client and
with a Mattermost bundle (`ServiceSettings.WebappDirectory`): the pages, the console, the asset
files, the bundle's `root.html`, `/static/` files, `robots.txt`, their 304s and 404s.

The routes are read from the application's routing table, so a page route added later is
tried here too (or fails `fill`, which then has to learn its parameters).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from hubbub.app import Hubbub
from tests.support.api import API

ROOT_HTML = b"<!doctype html><html><head><title>Mattermost</title></head><body></body></html>"


@pytest.fixture(params=["own client", "bundle"])
def config_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "own client":
        return {}
    client = tmp_path / "release" / "client"
    client.mkdir(parents=True)
    (client / "root.html").write_bytes(ROOT_HTML)
    (client / "main.1234.js").write_bytes(b"document.title = 'x';\n")
    (client / "evil.html").write_bytes(b"<script>alert(1)</script>")
    return {"MM_SERVICESETTINGS_WEBAPPDIRECTORY": str(client)}


def page_routes(node: Hubbub) -> list[Route]:
    app: object = node.asgi
    while not isinstance(app, Starlette):
        app = app.app  # type: ignore[attr-defined]  # the middleware layers in front
    routes = []
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/api/v4":
            continue
        assert isinstance(route, Route), f"a route of an unknown kind: {route!r}"
        routes.append(route)
    return routes


def fill(path: str, asset: str) -> list[str]:
    """Concrete paths for a route: one that exists and one that does not, where it can."""
    digest, name = asset.split("/")[2:4]
    examples = {
        "/_hubbub/{digest}/{name:path}": [asset, f"/_hubbub/{digest}/missing.js"],
        "/static/{name:path}": ["/static/main.1234.js", "/static/evil.html", "/static/nope.js"],
        "/{anything:path}": ["/login", "/team/channels/town-square", "/nothing-here"],
    }
    if "{" not in path:
        return [path]
    assert path in examples, f"a page route with parameters this test cannot fill: {path}"
    assert name
    return examples[path]


def assert_security_headers(resp: httpx.Response) -> None:
    where = f"{resp.request.url.path} ({resp.status_code})"
    assert resp.headers.get("x-content-type-options") == "nosniff", where
    assert resp.headers.get("referrer-policy") == "no-referrer", where
    assert resp.headers.get("x-frame-options") in {"DENY", "SAMEORIGIN"}, where
    assert "frame-ancestors" in resp.headers.get("content-security-policy", ""), where


async def test_every_page_route_carries_the_security_headers(api: API, node: Hubbub) -> None:
    console = await api.client.get("/admin")
    assert console.status_code == 200
    asset = re.findall(r'(?:src|href)="(/_hubbub/[^"]+)"', console.text)[0]
    tried = 0
    for route in page_routes(node):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            for path in fill(route.path, asset):
                resp = await api.client.request(method, path)
                assert_security_headers(resp)
                tried += 1
                etag = resp.headers.get("etag")
                if resp.status_code == 200 and etag:
                    again = await api.client.request(method, path, headers={"If-None-Match": etag})
                    assert again.status_code == 304, path
                    assert_security_headers(again)
    assert tried >= 4


async def test_a_plain_get_on_the_websocket_path_carries_the_security_headers(api: API) -> None:
    resp = await api.client.get("/api/v4/websocket")
    assert_security_headers(resp)
