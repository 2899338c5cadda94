"""HTTP metrics with Mattermost's names: `mattermost_http_requests_total`,
`mattermost_http_errors_total` and `mattermost_api_time{handler, method, status_code,
origin_client, page_load_context}`, so a Mattermost dashboard reads hubbub's nodes.

`handler` is the route's path template (`/api/v4/users/{user_id}`) where Mattermost has its
handler's function name (`getUser`): both are bounded, and the template needs no table. An
answer of 400 or above counts as an error, as Mattermost counts a request whose handler set an
error. Only `/api/v4` requests are counted; the websocket is not (it has its own metrics).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.observability.metrics import Metrics

API_PREFIX = "/api/v4"

# The request headers the labels are made of (raw ASGI names, lower-case).
_LABEL_HEADERS = frozenset({b"user-agent", b"x-requested-with", b"x-page-load-context"})


def origin_client(headers: dict[bytes, bytes]) -> str:
    """Mattermost's `origin_client` label: which kind of client made the request."""
    agent = headers.get(b"user-agent", b"").decode("latin-1").lower()
    if "mattermost mobile" in agent or "rnbeta" in agent:
        return "mobile"
    if "electron" in agent or "mattermost/" in agent:
        return "desktop"
    if headers.get(b"x-requested-with", b"").lower() == b"xmlhttprequest":
        return "webapp"
    return ""


class HTTPMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The histogram's child per label values, as `labels()` finds it (after checking and
        # converting the values, under a lock) on every request otherwise. As bounded as the
        # histogram's own children: one entry per child.
        self._api_time: dict[tuple[str, str, str, str, str], Any] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX + "/"):
            return self.app(scope, receive, send)
        return self._measured(scope, receive, send)

    async def _measured(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        m = self.metrics
        m.http_requests.inc()
        if status >= 400:
            m.http_errors.inc()
        route: Any = scope.get("route")
        # A Mount that matched only the prefix (no route under it) is no handler.
        handler = API_PREFIX + route.path if isinstance(route, Route) else "unmatched"
        headers = {k: v for k, v in scope.get("headers", []) if k in _LABEL_HEADERS}
        labels = (
            handler,
            scope.get("method", ""),
            str(status),
            origin_client(headers),
            headers.get(b"x-page-load-context", b"").decode("latin-1")[:32],
        )
        child = self._api_time.get(labels)
        if child is None:
            child = self._api_time[labels] = m.api_time.labels(*labels)
        child.observe(seconds)
