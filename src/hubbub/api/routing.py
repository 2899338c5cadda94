"""A Starlette router that tries only the routes a path can match.

Starlette's `Router` tries its routes one at a time, a regular expression each: a request for
`/api/v4/users/me` tried some 75 of the API's ~110 routes before its own, a tenth of the fixed CPU
cost of a request (docs/design/capacity.md, "The fixed cost of a request"). A route whose path
starts with a literal segment (`/users/...`) can only match a path with that same first segment,
so `IndexedRouter` keeps, for each first segment, the routes that could match it (that segment's
routes and those starting with a parameter), in the table's order, and tries only those.

Nothing else changes: the same `Route` objects answer, with the same `scope["route"]`, path
parameters and 405 for a partial match, and the first match in the table still wins. When no
candidate matches, the request goes through Starlette's own `Router.app` over every route, so
its slash redirect and its 404 stay exactly Starlette's.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send


def first_segment(path: str) -> str:
    """`users` of `/users/me`; "" for `/` and paths not starting with `/`."""
    if not path.startswith("/"):
        return ""
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]


def literal_segment(route: BaseRoute) -> str | None:
    """The literal first segment every path `route` matches starts with, or None when it has
    none (a parameter there, an empty path, a kind of route whose paths are not known)."""
    if not isinstance(route, Route | WebSocketRoute | Mount):
        return None
    segment = first_segment(route.path)
    if not segment or "{" in segment or "}" in segment:
        return None
    return segment


class IndexedRouter(Router):
    """`Router` with its routes indexed by their literal first path segment. The route table
    is fixed once built: `routes` must not be changed afterwards."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        super().__init__(routes=list(routes))
        segments = [literal_segment(r) for r in self.routes]
        # Each candidate list keeps the table's order: the first match must stay the first.
        self._any: tuple[BaseRoute, ...] = tuple(
            r for r, s in zip(self.routes, segments, strict=True) if s is None
        )
        self._by_segment: dict[str, tuple[BaseRoute, ...]] = {
            segment: tuple(
                r for r, s in zip(self.routes, segments, strict=True) if s is None or s == segment
            )
            for segment in {s for s in segments if s is not None}
        }

    def candidates(self, route_path: str) -> tuple[BaseRoute, ...]:
        """The routes that may match `route_path`, in table order."""
        return self._by_segment.get(first_segment(route_path), self._any)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await super().app(scope, receive, send)
            return
        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                partial, partial_scope = route, child_scope
                break
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is None:
            # No route can take it: Starlette's own answer (a slash redirect or 404).
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        scope["route"] = partial
        scope.update(partial_scope)
        await partial.handle(scope, receive, send)
