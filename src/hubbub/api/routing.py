"""A Starlette router that tries only the routes a path can match.

Starlette's `Router` tries its routes one at a time, a regular expression each: a request for
`/api/v4/users/me` tried some 75 of the API's ~180 routes before its own, a tenth of the fixed
CPU cost of a request (docs/design/capacity.md, "The fixed cost of a request").

A route's path is a sequence of segments, each a literal (`users`), one segment holding
parameters (`{user_id}`, `{id}.json`), or, from a `{name:path}` parameter or a `Mount` on, any
number of segments (its *rest*). A path can only match a route whose literal segments it has at
the same positions and whose segment count it has (or exceeds, with a rest). `IndexedRouter`
reduces a path to a key (its segment count and, at each position, its segment where some route
has that literal there, else a blank) and keeps, per key, the routes compatible with it in the
table's order. Keys are finite (the blanks absorb every id), built as they are first seen.

Nothing else changes: the same `Route` objects answer, with the same `scope["route"]`, path
parameters and 405 for a partial match, and the first match in the table still wins. When no
candidate matches, the request goes through Starlette's own `Router.app` over every route, so
its slash redirect and its 404 stay exactly Starlette's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

# Starlette's convertors whose expressions never match a `/`: a parameter of one of these stays
# within its segment. Any other (`path`, one registered later) may span segments.
_ONE_SEGMENT = frozenset({"str", "int", "float", "uuid"})
_PARAM = re.compile(r"{([^}:]*)(?::([^}]*))?}")

# Keys are finite, but a client could send many combinations of literals: past this many, the
# candidates of a new key are found again each time.
MAX_KEYS = 4096

Key = tuple[int, tuple[str | None, ...]]


@dataclass(frozen=True, slots=True)
class Shape:
    """Which paths a route may match: `literals[i]` is the literal segment at position i (None:
    any one segment); with `rest`, the last position and any after it are anything (at least
    one segment, perhaps empty), else the path has exactly `len(literals)` segments. `None` as
    a whole (see `shape_of`) means any path."""

    literals: tuple[str | None, ...]
    rest: bool

    def admits(self, key: Key) -> bool:
        count, segments = key
        enough = count >= len(self.literals) if self.rest else count == len(self.literals)
        if not enough:
            return False
        return all(
            lit is None or lit == seg for lit, seg in zip(self.literals, segments, strict=False)
        )


def segments_of(path: str) -> list[str]:
    """`["users", "me"]` of `/users/me`; `[""]` of `/`; `[]` of a path not starting with `/`."""
    return path.split("/")[1:] if path.startswith("/") else []


def shape_of(route: BaseRoute) -> Shape | None:
    if isinstance(route, Mount):
        # A mount matches `path/` followed by anything.
        return _shape([*segments_of(route.path), "{path:path}"] if route.path else ["{p:path}"])
    if isinstance(route, Route | WebSocketRoute):
        return _shape(segments_of(route.path)) if route.path.startswith("/") else None
    return None


def _shape(segments: list[str]) -> Shape:
    literals: list[str | None] = []
    for segment in segments:
        params = _PARAM.findall(segment)
        if any((conv or "str") not in _ONE_SEGMENT for _, conv in params):
            return Shape((*literals, None), rest=True)
        literals.append(None if params or "{" in segment or "}" in segment else segment)
    return Shape(tuple(literals), rest=False)


class IndexedRouter(Router):
    """`Router` with its routes indexed by the shapes of their paths. The route table is fixed
    once built: `routes` must not be changed afterwards."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        super().__init__(routes=list(routes))
        self._shapes = [shape_of(r) for r in self.routes]
        longest = max((len(s.literals) for s in self._shapes if s is not None), default=0)
        # Per position, the literals some route has there: any other segment is a blank.
        self._literals: list[frozenset[str]] = [
            frozenset(
                lit
                for s in self._shapes
                if s is not None and i < len(s.literals)
                for lit in (s.literals[i],)
                if lit is not None
            )
            for i in range(longest)
        ]
        self._longest = longest
        self._index: dict[Key, tuple[BaseRoute, ...]] = {}

    def key(self, route_path: str) -> Key:
        segments = segments_of(route_path)
        literals = self._literals
        return (
            # Every count past the longest route is alike: only rests can take it.
            min(len(segments), self._longest + 1),
            tuple(
                seg if seg in literals[i] else None
                for i, seg in enumerate(segments[: self._longest])
            ),
        )

    def candidates(self, route_path: str) -> tuple[BaseRoute, ...]:
        """The routes that may match `route_path`, in table order."""
        key = self.key(route_path)
        found = self._index.get(key)
        if found is None:
            found = tuple(
                r
                for r, s in zip(self.routes, self._shapes, strict=True)
                if s is None or s.admits(key)
            )
            if len(self._index) < MAX_KEYS:
                self._index[key] = found
        return found

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
