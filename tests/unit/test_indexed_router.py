"""`IndexedRouter` tries only the routes a path's first segment allows: it must choose exactly
the route Starlette's `Router` chooses, and answer exactly as it does when none matches."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from hubbub.api.routing import IndexedRouter, Shape, segments_of, shape_of
from tests.support.routes import api_routes

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _first_match(routes: object, scope: dict[str, object]) -> tuple[BaseRoute | None, str]:
    """Starlette's rule: the first full match, else the first partial one (a 405)."""
    partial = None
    for route in routes:  # type: ignore[attr-defined]
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, "full"
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, "partial" if partial is not None else "none"


def _paths(routes: list[BaseRoute]) -> set[str]:
    """Paths each route matches, their slash variants, and near misses."""
    out = {"/", "", "/nowhere", "/users", "/users/", "//users", "/websocket", "/a/b/c/d/e/f"}
    for route in routes:
        path = getattr(route, "path", "")
        for value in ("me", "stats", "abcdefghijklmnopqrstuvwxyz", "x.y"):
            concrete = re.sub(r"\{[^}]*\}", value, path)
            out |= {concrete, concrete + "/", concrete.rstrip("/"), concrete + "/extra"}
            out.add(concrete.upper())
    return out


def test_the_api_table_chooses_the_same_route_for_every_path_and_method(tmp_path: Path) -> None:
    routes = api_routes(tmp_path)
    assert len(routes) > 100
    assert _same_choices(routes, _paths(routes)) > 5000


def test_a_table_with_mounts_and_path_parameters_chooses_the_same_routes() -> None:
    paths = _paths(_table()) | {p.removeprefix("/api/v4") for _, p in REQUESTS}
    assert _same_choices(_table(), paths) > 1000


def _same_choices(routes: list[BaseRoute], paths: set[str]) -> int:
    """Asserts the indexed candidates of each path lead to Starlette's choice, for every
    method; returns how many choices were compared."""
    indexed = IndexedRouter(routes)
    plain = Router(routes=routes)
    checked = 0
    for path in sorted(paths):
        for method in METHODS:
            for kind in ("http", "websocket"):
                scope = {"type": kind, "method": method, "path": path, "root_path": ""}
                expected = _first_match(plain.routes, scope)
                assert _first_match(indexed.candidates(path), scope) == expected, (method, path)
                checked += 1
    return checked


def test_shapes() -> None:
    assert segments_of("/users/me") == ["users", "me"]
    assert segments_of("/users/") == ["users", ""]
    assert segments_of("/") == [""]
    assert segments_of("") == []
    assert shape_of(Route("/users/me", _echo)) == Shape(("users", "me"), rest=False)
    assert shape_of(Route("/users/{user_id}/image", _echo)) == Shape(
        ("users", None, "image"), rest=False
    )
    assert shape_of(Route("/u/{id:int}.json", _echo)) == Shape(("u", None), rest=False)
    assert shape_of(Route("/files/{path:path}/x", _echo)) == Shape(("files", None), rest=True)
    assert shape_of(Route("/", _echo)) == Shape(("",), rest=False)
    assert shape_of(Mount("", routes=[])) == Shape((None,), rest=True)
    assert shape_of(Mount("/files", routes=[])) == Shape(("files", None), rest=True)


def test_few_routes_are_tried_for_a_deep_literal_path(tmp_path: Path) -> None:
    indexed = IndexedRouter(api_routes(tmp_path))
    assert len(indexed.routes) > 100
    assert len(indexed.candidates("/users/me")) < 5
    assert len(indexed.candidates("/users/abcdefghijklmnopqrstuvwxyz")) < 5
    assert len(indexed.candidates("/channels/abcdefghijklmnopqrstuvwxyz/stats")) < 5


async def _echo(request: Request) -> Response:
    route = request.scope["route"]
    return JSONResponse(
        {"route": route.path, "params": request.path_params, "root": request.scope["root_path"]}
    )


async def _socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"route": websocket.scope["route"].path})
    await websocket.close()


def _table() -> list[BaseRoute]:
    return [
        Route("/users/stats", _echo, methods=["GET"]),
        Route("/users/{user_id}", _echo, methods=["GET", "PUT"]),
        Route("/users/{user_id}/image", _echo, methods=["POST"]),
        Route("/{team_name}/channels/{channel}", _echo, methods=["GET"]),
        Route("/teams/{team_id}/{member}", _echo, methods=["GET"]),
        Route("/teams/{team_id}/channels/{channel}", _echo, methods=["GET"]),
        Route("/teams/{team_id}/channels/{channel}", _echo, methods=["DELETE"]),
        Route("/posts/", _echo, methods=["POST"]),
        Route("/files/{path:path}", _echo, methods=["GET"]),
        Mount("/plugins", routes=[Route("/{plugin_id}/x", _echo)]),
        WebSocketRoute("/websocket", _socket),
    ]


REQUESTS = [
    ("GET", "/api/v4/users/stats"),
    ("GET", "/api/v4/users/abc"),
    ("PUT", "/api/v4/users/abc"),
    ("DELETE", "/api/v4/users/abc"),  # 405 with the route's Allow header
    ("GET", "/api/v4/users/abc/image"),  # 405
    ("GET", "/api/v4/users/abc/"),  # the slash redirect
    ("GET", "/api/v4/users/abc/nothing"),  # 404
    ("GET", "/api/v4/teams/channels/c1"),  # the parameter route, earlier in the table, wins
    ("GET", "/api/v4/teams/t1/c1"),
    ("GET", "/api/v4/teams/t1/channels/c1"),
    ("DELETE", "/api/v4/teams/t1/channels/c1"),
    ("PATCH", "/api/v4/teams/t1/channels/c1"),
    ("GET", "/api/v4/myteam/channels/c1"),
    ("POST", "/api/v4/posts"),  # redirect to /posts/
    ("POST", "/api/v4/posts/"),
    ("GET", "/api/v4/files/a/b/c.png"),
    ("GET", "/api/v4/plugins/p1/x"),
    ("GET", "/api/v4/plugins/p1/y"),
    ("GET", "/api/v4/"),
    ("GET", "/api/v4/nowhere"),
    ("GET", "/api/v4/websocket"),
]


def _app(indexed: bool) -> Starlette:
    api = (
        Mount("/api/v4", app=IndexedRouter(_table()))
        if indexed
        else Mount("/api/v4", routes=_table())
    )
    return Starlette(routes=[api])


@pytest.mark.parametrize(("method", "path"), REQUESTS)
async def test_answers_as_starlette_router_answers(method: str, path: str) -> None:
    answers = []
    for indexed in (False, True):
        transport = httpx.ASGITransport(app=_app(indexed))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            resp = await client.request(method, path, follow_redirects=False)
        answers.append((resp.status_code, sorted(resp.headers.items()), resp.text))
    assert answers[1] == answers[0]
    assert answers[0][0] in {200, 307, 404, 405}
