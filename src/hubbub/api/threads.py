"""Routes for collapsed reply threads: `/users/{user_id}/teams/{team_id}/threads[...]`.

Query flags are read as Go's `strconv.ParseBool` reads them; `per_page` (or the older `pageSize`)
defaults to 60 and is capped at 200; `before` and `after` are thread ids and exclude each other.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import JSONResponse, ok, paging, path_id
from hubbub.api.params import user_id_param
from hubbub.errors import bad_param
from hubbub.ids import is_valid_id
from hubbub.services.threads import ThreadQuery, ThreadsService

MAX_MS = 2**62
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "") in _TRUE


def _cursor(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if value and not is_valid_id(value):
        raise bad_param(name)
    return value


def _since(request: Request) -> int:
    raw = request.query_params.get("since", "")
    if not raw:
        return 0
    if not raw.isdigit():
        raise bad_param("since")
    return min(int(raw), MAX_MS)


class ThreadRoutes:
    def __init__(self, threads: ThreadsService) -> None:
        self.threads = threads

    def routes(self) -> list[BaseRoute]:
        base = "/users/{user_id}/teams/{team_id}/threads"
        one = base + "/{thread_id}"
        return [
            Route(base, self.for_user, methods=["GET"]),
            Route(base + "/read", self.mark_all_read, methods=["PUT"]),
            Route(one, self.get, methods=["GET"]),
            Route(one + "/following", self.follow, methods=["PUT"]),
            Route(one + "/following", self.unfollow, methods=["DELETE"]),
            Route(one + "/read/{timestamp}", self.mark_read, methods=["PUT"]),
            Route(one + "/set_unread/{post_id}", self.set_unread, methods=["POST"]),
        ]

    async def for_user(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        team_id = path_id(request, "team_id")
        _, per_page = paging(request)
        q = ThreadQuery(
            per_page=per_page,
            since=_since(request),
            before=_cursor(request, "before"),
            after=_cursor(request, "after"),
            unread=_flag(request, "unread"),
            deleted=_flag(request, "deleted"),
            extended=_flag(request, "extended"),
            totals_only=_flag(request, "totalsOnly"),
            threads_only=_flag(request, "threadsOnly"),
        )
        return JSONResponse(await self.threads.for_user(session, user_id, team_id, q))

    async def get(self, request: Request) -> Response:
        session = require_session(request)
        user_id, team_id, thread_id = self._ids(request)
        thread = await self.threads.get(
            session, user_id, team_id, thread_id, _flag(request, "extended")
        )
        return JSONResponse(thread)

    async def follow(self, request: Request) -> Response:
        session = require_session(request)
        await self.threads.set_following(session, *self._ids(request), True)
        return ok()

    async def unfollow(self, request: Request) -> Response:
        session = require_session(request)
        await self.threads.set_following(session, *self._ids(request), False)
        return ok()

    async def mark_read(self, request: Request) -> Response:
        session = require_session(request)
        raw = str(request.path_params.get("timestamp", ""))
        if not raw.isdigit():
            raise bad_param("timestamp", "api.context.invalid_url_param")
        thread = await self.threads.mark_read(session, *self._ids(request), min(int(raw), MAX_MS))
        return JSONResponse(thread)

    async def set_unread(self, request: Request) -> Response:
        session = require_session(request)
        user_id, team_id, thread_id = self._ids(request)
        post_id = path_id(request, "post_id")
        return JSONResponse(
            await self.threads.set_unread(session, user_id, team_id, thread_id, post_id)
        )

    async def mark_all_read(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        await self.threads.mark_all_read(session, user_id, path_id(request, "team_id"))
        return ok()

    @staticmethod
    def _ids(request: Request) -> tuple[str, str, str]:
        return user_id_param(request), path_id(request, "team_id"), path_id(request, "thread_id")
