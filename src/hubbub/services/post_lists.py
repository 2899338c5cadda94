"""Reading posts as PostLists: channel history, threads, pinned posts, posts around the first
unread one, and posts by id.

Everything follows Mattermost's `getPostsForChannel`, `getPostThread` and
`AddCursorIdsForPostList`; the one deliberate difference is that posts created in the same
millisecond are ordered by id and never skipped by a `before`/`after` cursor (Mattermost compares
`create_at` alone). `order` is always newest first; the roots (and, unless `skip_fetch_threads`,
whole threads) of replies in a page are added to `posts` but not to `order`, as Mattermost does
for clients without collapsed threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, String, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from hubbub.errors import AppError, bad_param, not_found
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.permissions import Permissions
from hubbub.services.post_model import post_list, post_list_etag, sort_newest_first
from hubbub.services.post_render import PostRenderer, PostRow
from hubbub.services.session import Session
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, posts
from hubbub.version import etag

SINCE_LIMIT = 1000
THREAD_PER_PAGE_MAX = 200
BY_IDS_MAX = 1000


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """The parameters of `GET /channels/{id}/posts`; `since` wins, then `after`, then `before`."""

    page: int = 0
    per_page: int = 60
    since: int = 0
    before: str = ""
    after: str = ""
    include_deleted: bool = False
    skip_fetch_threads: bool = False
    collapsed_threads: bool = False


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    """`GET /posts/{id}/thread`: `per_page` 0 means the whole thread."""

    per_page: int = 0
    from_post: str = ""
    from_create_at: int = 0
    direction: str = ""


@dataclass(frozen=True, slots=True)
class Listing:
    """A PostList with its ETag; `body` is None when the caller's `If-None-Match` matched."""

    etag: str | None
    body: dict[str, Any] | None


def _after(anchor: PostRow) -> Any:
    return or_(
        posts.c.create_at > anchor.create_at,
        and_(posts.c.create_at == anchor.create_at, posts.c.id > anchor.id),
    )


def _before(anchor: PostRow) -> Any:
    return or_(
        posts.c.create_at < anchor.create_at,
        and_(posts.c.create_at == anchor.create_at, posts.c.id < anchor.id),
    )


def _channel_filter(query: Select[Any], channel_id: str, collapsed: bool) -> Select[Any]:
    query = query.where(posts.c.channel_id == channel_id)
    if collapsed:
        query = query.where(posts.c.root_id == "")
    return query


# `channel_etag`'s two values in one statement, built once.
_ETAG = select(
    select(func.max(posts.c.update_at))
    .where(posts.c.channel_id == bindparam("p_channel_id", type_=String))
    .scalar_subquery(),
    select(channels.c.event_seq)
    .where(channels.c.id == bindparam("p_channel_id", type_=String))
    .scalar_subquery(),
)


class PostLists:
    """PostLists the caller may read; `build_post_list` renders ids already filtered (search)."""

    def __init__(
        self,
        db: Database,
        channels: ChannelAccess,
        permissions: Permissions,
        renderer: PostRenderer,
    ) -> None:
        self.db = db
        self.channels = channels
        self.permissions = permissions
        self.renderer = renderer

    # Channel history

    async def channel_posts(
        self, session: Session, channel_id: str, q: HistoryQuery, if_none_match: str | None
    ) -> Listing:
        await self.channels.require_read(session, channel_id)
        if q.include_deleted:
            await self.channels.require(
                session, await self.channels.get_row(channel_id), "read_deleted_posts"
            )
        async with self.db.read() as conn:
            tag: str | None = None
            if q.since <= 0:
                tag = await self.channel_etag(conn, channel_id)
                if if_none_match == tag:
                    return Listing(tag, None)
            beyond: str | None = None
            if q.since > 0:
                rows, extra = await self._since(conn, channel_id, q)
                order = sort_newest_first(r._mapping for r in rows if r.update_at > q.since)
            else:
                rows, beyond = await self._page_and_beyond(conn, channel_id, q)
                extra = await self._threads_of(conn, rows, q)
                order = sort_newest_first(r._mapping for r in rows)
            rendered = await self.renderer.render(conn, _unique([*rows, *extra]))
            next_id, prev_id = await self._cursors(conn, channel_id, rows, order, q, beyond)
        return Listing(tag, post_list(order, rendered, next_post_id=next_id, prev_post_id=prev_id))

    @staticmethod
    async def channel_etag(conn: AsyncConnection, channel_id: str) -> str:
        """Mattermost's `GetEtag`: the latest `update_at` in the channel; plus the channel's event
        sequence, which every post change bumps, so same-millisecond changes show too."""
        latest, seq = (await conn.execute(_ETAG, {"p_channel_id": channel_id})).one()
        return etag(latest or 0, seq or 0)

    async def _page_and_beyond(
        self, conn: AsyncConnection, channel_id: str, q: HistoryQuery
    ) -> tuple[Sequence[PostRow], str | None]:
        """A page of posts, and the id of the live post just past its end in its own order
        ("" if there is none): the cursor `_neighbour` would look for, read with the page as
        one row more. None when the page may hold deleted posts (its filter is then not the
        neighbour's)."""
        query = _channel_filter(select(posts), channel_id, q.collapsed_threads)
        if not q.include_deleted:
            query = query.where(posts.c.delete_at == 0)
        anchor_id = q.after or q.before
        ascending = bool(q.after)
        if anchor_id:
            anchor = await self._anchor(conn, anchor_id)
            if anchor is None:
                return [], None
            query = query.where(_after(anchor) if ascending else _before(anchor))
        if ascending:
            query = query.order_by(posts.c.create_at, posts.c.id)
        else:
            query = query.order_by(posts.c.create_at.desc(), posts.c.id.desc())
        if q.include_deleted:
            query = query.offset(q.page * q.per_page).limit(q.per_page)
            return (await conn.execute(query)).all(), None
        query = query.offset(q.page * q.per_page).limit(q.per_page + 1)
        rows = (await conn.execute(query)).all()
        if len(rows) > q.per_page:
            return rows[: q.per_page], rows[q.per_page].id
        return rows, ""

    async def _since(
        self, conn: AsyncConnection, channel_id: str, q: HistoryQuery
    ) -> tuple[Sequence[PostRow], Sequence[PostRow]]:
        """Posts created, edited or deleted after `since` (deleted ones included), oldest change
        first up to 1000, and the threads they belong to."""
        query = (
            _channel_filter(select(posts), channel_id, q.collapsed_threads)
            .where(posts.c.update_at > q.since)
            .order_by(posts.c.update_at, posts.c.id)
            .limit(SINCE_LIMIT)
        )
        rows = (await conn.execute(query)).all()
        return rows, await self._threads_of(conn, rows, q)

    @staticmethod
    async def _threads_of(
        conn: AsyncConnection, rows: Sequence[PostRow], q: HistoryQuery
    ) -> Sequence[PostRow]:
        if q.collapsed_threads:
            return []
        roots = sorted({r.root_id for r in rows if r.root_id})
        if not roots:
            return []
        wanted: Any = posts.c.id.in_(roots)
        if not q.skip_fetch_threads:
            wanted = or_(wanted, posts.c.root_id.in_(roots))
        query = select(posts).where(wanted, posts.c.delete_at == 0)
        return (await conn.execute(query)).all()

    async def _cursors(
        self,
        conn: AsyncConnection,
        channel_id: str,
        rows: Sequence[PostRow],
        order: list[str],
        q: HistoryQuery,
        beyond: str | None = None,
    ) -> tuple[str, str]:
        """`AddCursorIdsForPostList`. `beyond`: `_page_and_beyond`'s, when known."""
        if q.since > 0:
            return "", ""
        next_id: str | None = None
        prev_id: str | None = None
        if q.after:
            if q.page == 0:
                prev_id = q.after
            if len(order) < q.per_page:
                next_id = ""
        elif q.before:
            if q.page == 0:
                next_id = q.before
            if len(order) < q.per_page:
                prev_id = ""
        if beyond is not None and order:
            # The page's own read found the neighbour past its end; and the first page of the
            # newest posts has nothing newer.
            if q.after:
                next_id = beyond if next_id is None else next_id
            else:
                prev_id = beyond if prev_id is None else prev_id
                if next_id is None and not q.before and q.page == 0:
                    next_id = ""
        by_id = {r.id: r for r in rows}
        if next_id is None:
            next_id = ""
            if order:
                next_id = await self._neighbour(
                    conn, channel_id, by_id[order[0]], True, q.collapsed_threads
                )
        if prev_id is None:
            prev_id = ""
            if order:
                prev_id = await self._neighbour(
                    conn, channel_id, by_id[order[-1]], False, q.collapsed_threads
                )
        return next_id, prev_id

    @staticmethod
    async def _neighbour(
        conn: AsyncConnection, channel_id: str, anchor: PostRow, later: bool, collapsed: bool
    ) -> str:
        """The id of the next (`later`) or previous live post in the channel, or ""."""
        query = _channel_filter(select(posts.c.id), channel_id, collapsed).where(
            posts.c.delete_at == 0, _after(anchor) if later else _before(anchor)
        )
        if later:
            query = query.order_by(posts.c.create_at, posts.c.id)
        else:
            query = query.order_by(posts.c.create_at.desc(), posts.c.id.desc())
        found = (await conn.execute(query.limit(1))).scalar()
        return found or ""

    @staticmethod
    async def _anchor(conn: AsyncConnection, post_id: str) -> PostRow | None:
        query = select(posts.c.id, posts.c.create_at).where(posts.c.id == post_id)
        found: Any = (await conn.execute(query)).first()
        return found

    # Threads

    async def thread(
        self, session: Session, post_id: str, q: ThreadQuery, if_none_match: str | None
    ) -> Listing:
        if q.per_page > THREAD_PER_PAGE_MAX or q.per_page < 0:
            raise bad_param("perPage")
        if q.from_post and not q.from_create_at:
            raise bad_param("fromCreateAt")
        if q.direction not in {"", "up", "down"}:
            raise bad_param("direction")
        async with self.db.read() as conn:
            post = await self._live_post(conn, post_id)
            await self.channels.require_read(session, post.channel_id)
            rows, has_next = await self._thread_rows(conn, post, q)
            order = sort_newest_first(r._mapping for r in rows)
            tag = post_list_etag(order, (r._mapping for r in rows))
            if if_none_match == tag:
                return Listing(tag, None)
            rendered = await self.renderer.render(conn, rows)
        return Listing(tag, post_list(order, rendered, has_next=has_next if q.per_page else None))

    @staticmethod
    async def _thread_rows(
        conn: AsyncConnection, post: PostRow, q: ThreadQuery
    ) -> tuple[list[PostRow], bool]:
        root_id = post.root_id or post.id
        query = select(posts).where(
            or_(posts.c.id == root_id, posts.c.root_id == root_id), posts.c.delete_at == 0
        )
        has_next = False
        if q.per_page:
            down = q.direction == "down"
            if q.from_create_at:
                cursor = (
                    posts.c.create_at > q.from_create_at
                    if down
                    else posts.c.create_at < q.from_create_at
                )
                if q.from_post:
                    tie = posts.c.id > q.from_post if down else posts.c.id < q.from_post
                    cursor = or_(cursor, and_(posts.c.create_at == q.from_create_at, tie))
                query = query.where(cursor)
            if down:
                query = query.order_by(posts.c.create_at, posts.c.id)
            else:
                query = query.order_by(posts.c.create_at.desc(), posts.c.id.desc())
            query = query.limit(q.per_page + 1)
        rows = list((await conn.execute(query)).all())
        if q.per_page and len(rows) > q.per_page:
            rows, has_next = rows[: q.per_page], True
        if all(r.id != post.id for r in rows):
            rows.insert(0, post)
        return rows, has_next

    # Pinned posts, posts by id, posts around the first unread one

    async def pinned(self, session: Session, channel_id: str, if_none_match: str | None) -> Listing:
        """`GetPinnedPosts`: oldest first, as Mattermost orders them."""
        await self.channels.require_read(session, channel_id)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(posts)
                    .where(
                        posts.c.channel_id == channel_id,
                        posts.c.is_pinned.is_(True),
                        posts.c.delete_at == 0,
                    )
                    .order_by(posts.c.create_at, posts.c.id)
                )
            ).all()
            order = [r.id for r in rows]
            tag = post_list_etag(order, (r._mapping for r in rows))
            if if_none_match == tag:
                return Listing(tag, None)
            rendered = await self.renderer.render(conn, rows)
        return Listing(tag, post_list(order, rendered))

    # By id

    async def build_post_list(self, post_ids: Sequence[str]) -> dict[str, Any]:
        """A PostList of `post_ids` in the given order (ids that do not exist are left out).
        No permission check: the caller (search) has already decided what the user may see."""
        ids = list(dict.fromkeys(post_ids))
        if not ids:
            return post_list([], {})
        async with self.db.read() as conn:
            rows = (await conn.execute(select(posts).where(posts.c.id.in_(ids)))).all()
            rendered = await self.renderer.render(conn, rows)
        return post_list([i for i in ids if i in rendered], rendered)

    async def by_ids(self, session: Session, post_ids: list[str]) -> list[dict[str, Any]]:
        """`POST /posts/ids`: the posts the caller may read, newest first."""
        ids = sorted(set(post_ids))
        if not ids:
            raise bad_param("post_ids")
        if len(ids) > BY_IDS_MAX:
            raise AppError(
                "api.post.posts_by_ids.invalid_body.request_error",
                f"The request contains more than {BY_IDS_MAX} post ids.",
                400,
            )
        async with self.db.read() as conn:
            rows = (await conn.execute(select(posts).where(posts.c.id.in_(ids)))).all()
            readable = await self.readable_channels(session, {r.channel_id for r in rows})
            rows = [r for r in rows if r.channel_id in readable]
            rendered = await self.renderer.render(conn, rows)
        return [rendered[i] for i in sort_newest_first(r._mapping for r in rows)]

    async def readable_channels(self, session: Session, channel_ids: set[str]) -> set[str]:
        readable = set()
        for channel_id in sorted(channel_ids):
            try:
                await self.channels.require_read(session, channel_id)
            except AppError as e:
                if e.status_code not in (403, 404):
                    raise
                continue
            readable.add(channel_id)
        return readable

    async def around_unread(
        self,
        session: Session,
        user_id: str,
        channel_id: str,
        limit_before: int,
        limit_after: int,
        q: HistoryQuery,
    ) -> Listing:
        """`GET /users/{id}/channels/{id}/posts/unread`: the oldest unread post, `limit_before`
        posts before it and up to `limit_after` - 1 after it; without an unread post, the
        latest `limit_before` posts (with the channel ETag)."""
        await self.permissions.require_user(session, user_id)
        await self.channels.require_read(session, channel_id)
        if limit_after == 0:
            raise AppError(
                "api.context.invalid_url_param.app_error",
                "Invalid or missing limit_after parameter in request URL.",
                400,
            )
        async with self.db.read() as conn:
            viewed = (
                await conn.execute(
                    select(channel_members.c.last_viewed_at).where(
                        channel_members.c.channel_id == channel_id,
                        channel_members.c.user_id == user_id,
                    )
                )
            ).scalar()
            if viewed is None:
                raise not_found("channel member", "app.channel.get_member.missing.app_error")
            first_unread = (
                await conn.execute(
                    _channel_filter(select(posts), channel_id, q.collapsed_threads)
                    .where(posts.c.delete_at == 0, posts.c.create_at > viewed)
                    .order_by(posts.c.create_at, posts.c.id)
                    .limit(1)
                )
            ).first()
            rows: Sequence[PostRow]
            older: str | None
            newer: str | None
            if first_unread is None:
                latest = HistoryQuery(
                    per_page=limit_before,
                    skip_fetch_threads=q.skip_fetch_threads,
                    collapsed_threads=q.collapsed_threads,
                )
                tag = await self.channel_etag(conn, channel_id)
                rows, older = await self._page_and_beyond(conn, channel_id, latest)
                newer = ""  # the newest posts: nothing after them
                extra = await self._threads_of(conn, rows, latest)
            else:
                tag = None
                thread, _ = await self._thread_rows(conn, first_unread, ThreadQuery())
                # Each page's read also finds the neighbour past its end: the list's cursors.
                before, older = await self._page_and_beyond(
                    conn, channel_id, _around(q, first_unread.id, limit_before, False)
                )
                after, newer = await self._page_and_beyond(
                    conn, channel_id, _around(q, first_unread.id, limit_after - 1, True)
                )
                rows = [first_unread, *before, *after]
                extra = [*thread, *await self._threads_of(conn, rows, q)]
            order = sort_newest_first(r._mapping for r in _unique(rows))
            rendered = await self.renderer.render(conn, _unique([*rows, *extra]))
            by_id = {r.id: r for r in rows}
            next_id = prev_id = ""
            if order:
                next_id = (
                    newer
                    if newer is not None
                    else await self._neighbour(
                        conn, channel_id, by_id[order[0]], True, q.collapsed_threads
                    )
                )
                prev_id = (
                    older
                    if older is not None
                    else await self._neighbour(
                        conn, channel_id, by_id[order[-1]], False, q.collapsed_threads
                    )
                )
        return Listing(tag, post_list(order, rendered, next_post_id=next_id, prev_post_id=prev_id))

    @staticmethod
    async def _live_post(conn: AsyncConnection, post_id: str) -> PostRow:
        row = (
            await conn.execute(select(posts).where(posts.c.id == post_id, posts.c.delete_at == 0))
        ).first()
        if row is None:
            raise not_found("post", "app.post.get.app_error")
        return row


def _around(q: HistoryQuery, post_id: str, limit: int, after: bool) -> HistoryQuery:
    return HistoryQuery(
        per_page=max(0, limit),
        before="" if after else post_id,
        after=post_id if after else "",
        skip_fetch_threads=q.skip_fetch_threads,
        collapsed_threads=q.collapsed_threads,
    )


def _unique(rows: Sequence[PostRow]) -> list[PostRow]:
    seen: dict[str, PostRow] = {}
    for r in rows:
        seen.setdefault(r.id, r)
    return list(seen.values())


__all__ = ["HistoryQuery", "Listing", "PostLists", "Row", "ThreadQuery"]
