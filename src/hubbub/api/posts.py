"""Routes for posts, threads, history and pinned posts (reactions: `api/reactions.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_session
from hubbub.api.http import (
    MAX_PER_PAGE,
    JSONResponse,
    created,
    etag_response,
    field,
    ok,
    optional_field,
    paging,
    path_id,
    query_bool,
    query_int,
    read_list,
    read_object,
)
from hubbub.api.params import user_id_param
from hubbub.config import Settings
from hubbub.errors import AppError, bad_body, bad_param
from hubbub.ids import is_valid_id
from hubbub.services.post_lists import HistoryQuery, Listing, PostLists, ThreadQuery
from hubbub.services.post_model import check_props
from hubbub.services.posts import NewPost, PostChanges, PostsService
from hubbub.services.statuses import StatusesService
from hubbub.version import etag

LIMIT_DEFAULT = 60
MAX_MS = 2**62  # larger timestamps would overflow PostgreSQL's bigint


class PostRoutes:
    def __init__(
        self,
        settings: Settings,
        posts: PostsService,
        post_lists: PostLists,
        statuses: StatusesService,
    ) -> None:
        self.settings = settings
        self.posts = posts
        self.post_lists = post_lists
        self.statuses = statuses

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/posts", self.create_post, methods=["POST"]),
            Route("/posts/ephemeral", self.create_ephemeral, methods=["POST"]),
            Route("/posts/ids", self.posts_by_ids, methods=["POST"]),
            Route("/posts/{post_id}", self.get_post, methods=["GET"]),
            Route("/posts/{post_id}", self.update_post, methods=["PUT"]),
            Route("/posts/{post_id}", self.delete_post, methods=["DELETE"]),
            Route("/posts/{post_id}/patch", self.patch_post, methods=["PUT"]),
            Route("/posts/{post_id}/thread", self.thread, methods=["GET"]),
            Route("/posts/{post_id}/pin", self.pin, methods=["POST"]),
            Route("/posts/{post_id}/unpin", self.unpin, methods=["POST"]),
            Route("/channels/{channel_id}/posts", self.channel_posts, methods=["GET"]),
            Route("/channels/{channel_id}/pinned", self.pinned, methods=["GET"]),
            Route(
                "/users/{user_id}/channels/{channel_id}/posts/unread",
                self.around_unread,
                methods=["GET"],
            ),
        ]

    # Posts

    async def create_post(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "post")
        channel_id = field(data, "channel_id", str)
        if not is_valid_id(channel_id):
            raise bad_param("post.channel_id")
        root_id = field(data, "root_id", str, "")
        if root_id and not is_valid_id(root_id):
            raise AppError("model.post.is_valid.root_id.app_error", "Invalid root id.", 400)
        file_ids: list[Any] = field(data, "file_ids", list, [])
        if not all(isinstance(f, str) for f in file_ids):
            raise bad_body("file_ids")
        new = NewPost(
            channel_id=channel_id,
            message=field(data, "message", str, ""),
            root_id=root_id,
            file_ids=tuple(file_ids),
            props=_props(data),
            pending_post_id=field(data, "pending_post_id", str, ""),
            type=field(data, "type", str, ""),
        )
        # Like Mattermost: on unless explicitly false; an unparsable value still means on.
        set_online = request.query_params.get("set_online", "").lower() not in {"false", "f", "0"}
        result = await self.posts.create(session, new, set_online=set_online)
        if set_online:
            await self.statuses.set_status(
                session.user_id, "online", manual=False, current=result.author_status
            )
        return created(result.post)

    async def create_ephemeral(self, request: Request) -> Response:
        session = require_session(request)
        data = await read_object(request, "body")
        user_id = data.get("user_id")
        if not is_valid_id(user_id):
            raise bad_param("user_id")
        post = data.get("post")
        if not isinstance(post, dict):
            raise bad_param("post")
        channel_id = post.get("channel_id")
        if not is_valid_id(channel_id):
            raise bad_param("channel_id")
        message = field(post, "message", str, "")
        created_post = await self.posts.ephemeral(session, str(user_id), str(channel_id), message)
        return created(created_post)

    async def posts_by_ids(self, request: Request) -> Response:
        session = require_session(request)
        ids: list[str] = await read_list(request, "post_ids")
        return JSONResponse(await self.post_lists.by_ids(session, ids))

    async def get_post(self, request: Request) -> Response:
        session = require_session(request)
        post = await self.posts.get(
            session, path_id(request, "post_id"), query_bool(request, "include_deleted")
        )
        return etag_response(request, etag(post["id"], post["update_at"]), post)

    async def update_post(self, request: Request) -> Response:
        session = require_session(request)
        post_id = path_id(request, "post_id")
        data = await read_object(request, "post")
        if data.get("id") != post_id:
            raise bad_param("id")
        # A full update: omitted fields are blank, as in Mattermost. File ids cannot change.
        changes = PostChanges(
            message=field(data, "message", str, ""),
            props=_props(data),
            is_pinned=field(data, "is_pinned", bool, False),
        )
        return JSONResponse(await self.posts.patch(session, post_id, changes, full=True))

    async def patch_post(self, request: Request) -> Response:
        session = require_session(request)
        post_id = path_id(request, "post_id")
        data = await read_object(request, "post")
        props = data.get("props")
        changes = PostChanges(
            message=optional_field(data, "message", str),
            props=None if props is None else check_props(props),
            is_pinned=optional_field(data, "is_pinned", bool),
        )
        return JSONResponse(await self.posts.patch(session, post_id, changes))

    async def delete_post(self, request: Request) -> Response:
        session = require_session(request)
        await self.posts.delete(session, path_id(request, "post_id"))
        return ok()

    async def pin(self, request: Request) -> Response:
        session = require_session(request)
        await self.posts.set_pinned(session, path_id(request, "post_id"), True)
        return ok()

    async def unpin(self, request: Request) -> Response:
        session = require_session(request)
        await self.posts.set_pinned(session, path_id(request, "post_id"), False)
        return ok()

    # Lists

    async def thread(self, request: Request) -> Response:
        session = require_session(request)
        post_id = path_id(request, "post_id")
        from_post = request.query_params.get("fromPost", "")
        if from_post and not is_valid_id(from_post):
            raise bad_param("fromPost")
        q = ThreadQuery(
            per_page=query_int(request, "perPage", 0),
            from_post=from_post,
            from_create_at=_timestamp(query_int(request, "fromCreateAt", 0)),
            direction=request.query_params.get("direction", ""),
        )
        listing = await self.post_lists.thread(session, post_id, q, _if_none_match(request))
        return _listing_response(listing)

    async def channel_posts(self, request: Request) -> Response:
        session = require_session(request)
        channel_id = path_id(request, "channel_id")
        page, per_page = paging(request)
        q = HistoryQuery(
            page=page,
            per_page=per_page,
            since=_timestamp(query_int(request, "since", 0)),
            before=_cursor(request, "before"),
            after=_cursor(request, "after"),
            include_deleted=query_bool(request, "include_deleted"),
            skip_fetch_threads=query_bool(request, "skipFetchThreads"),
            collapsed_threads=query_bool(request, "collapsedThreads"),
        )
        listing = await self.post_lists.channel_posts(
            session, channel_id, q, _if_none_match(request)
        )
        return _listing_response(listing)

    async def pinned(self, request: Request) -> Response:
        session = require_session(request)
        listing = await self.post_lists.pinned(
            session, path_id(request, "channel_id"), _if_none_match(request)
        )
        return _listing_response(listing)

    async def around_unread(self, request: Request) -> Response:
        session = require_session(request)
        user_id = user_id_param(request)
        channel_id = path_id(request, "channel_id")
        q = HistoryQuery(
            skip_fetch_threads=request.query_params.get("skipFetchThreads") == "true",
            collapsed_threads=request.query_params.get("collapsedThreads") == "true",
        )
        listing = await self.post_lists.around_unread(
            session,
            user_id,
            channel_id,
            _limit(request, "limit_before"),
            _limit(request, "limit_after"),
            q,
        )
        return _listing_response(listing)


def _timestamp(value: int) -> int:
    return max(0, min(value, MAX_MS))


def _props(data: Mapping[str, Any]) -> dict[str, Any]:
    props = data.get("props")
    return {} if props is None else check_props(props)


def _cursor(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if value and not is_valid_id(value):
        raise bad_param(name)
    return value


def _limit(request: Request, name: str) -> int:
    """`limit_before`/`limit_after`: invalid or negative -> 60, above 200 -> 200."""
    try:
        value = int(request.query_params.get(name, ""))
    except ValueError:
        return LIMIT_DEFAULT
    if value < 0:
        return LIMIT_DEFAULT
    return min(value, MAX_PER_PAGE)


def _if_none_match(request: Request) -> str | None:
    return request.headers.get("if-none-match")


def _listing_response(listing: Listing) -> Response:
    headers = {"ETag": listing.etag} if listing.etag else {}
    if listing.body is None:
        return Response(status_code=304, headers=headers)
    return JSONResponse(listing.body, headers=headers)
