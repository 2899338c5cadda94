"""Post search with the database's full-text search.

The terms a user typed are parsed by `search_query.parse_search` (pure, never raises). Filters
become ids here (`from:` usernames via the users service, `in:` channel names among the channels
the caller can read), then one query on a `db.search()` connection selects the page of post ids:
PostgreSQL matches the generated `posts.message_tsv` column with `to_tsquery('english', ...)`;
SQLite joins the FTS5 table `posts_fts` on `rowid`. Every text the user typed reaches the
database as a bound parameter, and the full-text query itself is built only from parsed terms.
`PostLists.build_post_list` renders the PostList; `matches` says which terms each post matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Integer,
    Select,
    Text,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.post_lists import PostLists
from hubbub.services.search_query import (
    SearchQuery,
    Term,
    create_at_range,
    fts5_query,
    fts5_term,
    matched_words,
    parse_search,
    tsquery_term,
    tsquery_text,
)
from hubbub.services.session import Session
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import channels, posts

DEFAULT_PER_PAGE = 60
MAX_PER_PAGE = 200
# Deeper pages than this are answered empty rather than asking the database for a huge OFFSET.
MAX_OFFSET = 100_000

_fts = table("posts_fts", column("rowid", Integer))
_fts_match_target: ColumnClause[Any] = literal_column("posts_fts")
_post_rowid: ColumnClause[Any] = literal_column("posts.rowid", Integer)
_post_tsv: ColumnClause[Any] = literal_column("posts.message_tsv")


@dataclass(frozen=True, slots=True)
class SearchParams:
    terms: str
    is_or_search: bool = False
    time_zone_offset: int = 0
    include_deleted_channels: bool = False
    page: int = 0
    per_page: int = DEFAULT_PER_PAGE

    def __post_init__(self) -> None:
        object.__setattr__(self, "page", max(0, self.page))
        per_page = self.per_page if self.per_page > 0 else DEFAULT_PER_PAGE
        object.__setattr__(self, "per_page", min(per_page, MAX_PER_PAGE))


def dm_channel_name(user_a: str, user_b: str) -> str:
    return "__".join(sorted((user_a, user_b)))


class SearchService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        users: UsersService,
        channels: ChannelAccess,
        post_lists: PostLists,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users
        self.channels = channels
        self.post_lists = post_lists

    async def search(
        self, session: Session, team_id: str | None, params: SearchParams
    ) -> dict[str, Any]:
        """A PostList plus `matches` of the posts the caller may read that match `params.terms`,
        newest first; in one team (and the caller's direct and group channels, as the channels
        service defines readable) or, with `team_id` None, everywhere."""
        if not self.settings.ServiceSettings.EnablePostSearch:
            raise AppError(
                "store.sql_post.search.disabled",
                "Searching has been disabled on this server.",
                501,
            )
        query = parse_search(params.terms)
        offset = params.page * params.per_page
        if query.is_empty or offset > MAX_OFFSET:
            return await self._result([], {})
        readable = await self.channels.readable_channel_ids(session.user_id, team_id)
        if not readable:
            return await self._result([], {})
        selection = await self._selection(session.user_id, query, readable, params)
        if selection is None:
            return await self._result([], {})
        async with self.db.search() as conn:
            stmt = selection.offset(offset).limit(params.per_page)
            rows = (await conn.execute(stmt)).all()
            matches = await self._matches(conn, rows, query.terms, params.is_or_search)
        return await self._result([r.id for r in rows], matches)

    async def _result(self, post_ids: list[str], matches: dict[str, list[str]]) -> dict[str, Any]:
        post_list = await self.post_lists.build_post_list(post_ids)
        post_list["matches"] = matches
        return post_list

    # Building the query

    def _hit(self, text_query: str) -> ColumnElement[bool]:
        """Posts whose message matches a rendered full-text query."""
        if self.db.is_sqlite:
            rowids = select(_fts.c.rowid).where(
                _fts_match_target.op("MATCH", is_comparison=True)(literal(text_query, Text))
            )
            return _post_rowid.in_(rowids)
        tsquery = func.to_tsquery(literal_column("'english'"), literal(text_query, Text))
        return _post_tsv.op("@@", is_comparison=True)(tsquery)

    async def _selection(
        self, user_id: str, query: SearchQuery, readable: list[str], params: SearchParams
    ) -> Select[Any] | None:
        """The ordered selection of matching posts, or None when it is certainly empty."""
        stmt = (
            select(posts.c.id, posts.c.message)
            .select_from(posts.join(channels, channels.c.id == posts.c.channel_id))
            .where(
                posts.c.channel_id.in_(readable),
                posts.c.delete_at == 0,
                ~posts.c.type.startswith("system_", autoescape=True),
            )
            .order_by(posts.c.create_at.desc(), posts.c.id.desc())
        )
        if not params.include_deleted_channels:
            stmt = stmt.where(channels.c.delete_at == 0)

        if query.from_users:
            ids = await self._user_ids(query.from_users)
            if not ids:
                return None
            stmt = stmt.where(posts.c.user_id.in_(ids))
        if query.excluded_users:
            ids = await self._user_ids(query.excluded_users)
            if ids:
                stmt = stmt.where(posts.c.user_id.not_in(ids))
        if query.in_channels:
            ids = await self._channel_ids(user_id, query.in_channels, readable)
            if not ids:
                return None
            stmt = stmt.where(posts.c.channel_id.in_(ids))
        if query.excluded_channels:
            ids = await self._channel_ids(user_id, query.excluded_channels, readable)
            if ids:
                stmt = stmt.where(posts.c.channel_id.not_in(ids))

        low, high = create_at_range(query, params.time_zone_offset)
        if low is not None:
            stmt = stmt.where(posts.c.create_at >= low)
        if high is not None:
            stmt = stmt.where(posts.c.create_at <= high)

        if query.terms:
            if self.db.is_sqlite:
                match = fts5_query(query.terms, any_of=params.is_or_search)
                stmt = stmt.join(_fts, _fts.c.rowid == _post_rowid).where(
                    _fts_match_target.op("MATCH", is_comparison=True)(literal(match, Text))
                )
            else:
                stmt = stmt.where(self._hit(tsquery_text(query.terms, params.is_or_search)))
        if query.excluded_terms:
            if self.db.is_sqlite:
                excluded = fts5_query(query.excluded_terms, any_of=True)
            else:
                excluded = tsquery_text(query.excluded_terms, any_of=True)
            stmt = stmt.where(~self._hit(excluded))
        return stmt

    async def _user_ids(self, usernames: tuple[str, ...]) -> list[str]:
        return [u["id"] for u in await self.users.get_by_usernames(usernames)]

    async def _channel_ids(
        self, user_id: str, names: tuple[str, ...], readable: list[str]
    ) -> list[str]:
        """Ids of readable channels named `names`; `@username` names that user's DM with the
        caller."""
        wanted = [n for n in names if not n.startswith("@")]
        dm_users = tuple(n[1:] for n in names if n.startswith("@") and len(n) > 1)
        if dm_users:
            wanted += [dm_channel_name(user_id, other) for other in await self._user_ids(dm_users)]
        if not wanted:
            return []
        async with self.db.search() as conn:
            result = await conn.execute(
                select(channels.c.id).where(
                    channels.c.id.in_(readable), channels.c.name.in_(wanted)
                )
            )
            return [r.id for r in result]

    # Matches

    async def _matches(
        self, conn: AsyncConnection, rows: list[Any], terms: tuple[Term, ...], any_of: bool
    ) -> dict[str, list[str]]:
        """For each post, the words of its message the search terms found.

        With AND every term matched every post; with OR the database says which did.
        """
        hits: dict[str, list[Term]] = {r.id: list(terms) for r in rows}
        if rows and any_of and len(terms) > 1:
            columns = [
                self._hit(fts5_term(t) if self.db.is_sqlite else tsquery_term(t)).label(f"t{i}")
                for i, t in enumerate(terms)
            ]
            result = await conn.execute(
                select(posts.c.id, *columns).where(posts.c.id.in_(list(hits)))
            )
            for r in result:
                hits[r.id] = [t for i, t in enumerate(terms) if r[i + 1]]
        matches: dict[str, list[str]] = {}
        for r in rows:
            found: list[str] = []
            for term in hits[r.id]:
                for word in matched_words(r.message, term) or [term.text]:
                    if word not in found:
                        found.append(word)
            matches[r.id] = found
        return matches
