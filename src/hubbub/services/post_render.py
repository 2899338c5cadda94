"""Post rows to Post JSON with everything a client expects around them.

One `render` call does a fixed number of queries for any number of posts: the thread counts of
replies whose root is not among them, the participants of threads, the reactions of posts that
have any, and the file infos of posts with files. It reads through the connection it is given, so
inside a write transaction it sees that transaction's own changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.services.files import file_info_json
from hubbub.services.post_model import as_mapping, post_json, reaction_json
from hubbub.services.users import UsersService
from hubbub.store.tables import file_infos, posts, reactions

PostRow = Row[Any]
# A post as rendered: a row as read, or (for a post just inserted) the values it was inserted with.
PostValues = Row[Any] | Mapping[str, Any]


class PostRenderer:
    def __init__(self, users: UsersService) -> None:
        self.users = users

    async def render(
        self,
        conn: AsyncConnection,
        rows: Sequence[PostValues],
        pending: Mapping[str, str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Post JSON by id. `pending` maps post ids to the pending_post_id to echo."""
        if not rows:
            return {}
        maps = [as_mapping(r) for r in rows]
        live = [r for r in maps if not r["delete_at"]]
        threads = await self._thread_counts(conn, maps)
        participants = await self._participants(
            conn, [r["id"] for r in live if not r["root_id"] and r["reply_count"]]
        )
        reacted = await self.reactions_for(conn, [r["id"] for r in live if r["has_reactions"]])
        files = await self.files_for(conn, [r["id"] for r in live if r["file_ids"]])
        out: dict[str, dict[str, Any]] = {}
        for r in maps:
            post_id, root_id = r["id"], r["root_id"]
            count, last = threads.get(root_id or post_id, (0, 0))
            out[post_id] = post_json(
                r,
                reply_count=count,
                last_reply_at=0 if root_id else last,
                participants=None if root_id else participants.get(post_id),
                reactions=reacted.get(post_id, []),
                files=files.get(post_id, []),
                pending_post_id=(pending or {}).get(post_id, ""),
            )
        return out

    async def _thread_counts(
        self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, tuple[int, int]]:
        """(reply_count, last_reply_at) per thread root; a reply shows its thread's count."""
        counts = {r["id"]: (r["reply_count"], r["last_reply_at"]) for r in rows if not r["root_id"]}
        missing = {r["root_id"] for r in rows if r["root_id"] and r["root_id"] not in counts}
        if missing:
            found = await conn.execute(
                select(posts.c.id, posts.c.reply_count, posts.c.last_reply_at).where(
                    posts.c.id.in_(sorted(missing))
                )
            )
            for row in found:
                counts[row.id] = (row.reply_count, row.last_reply_at)
        return counts

    async def _participants(
        self, conn: AsyncConnection, root_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The users who replied in each thread, in the order of their first reply."""
        if not root_ids:
            return {}
        first = func.min(posts.c.create_at).label("first_at")
        found = await conn.execute(
            select(posts.c.root_id, posts.c.user_id, first)
            .where(posts.c.root_id.in_(root_ids), posts.c.delete_at == 0)
            .group_by(posts.c.root_id, posts.c.user_id)
            .order_by(first, posts.c.user_id)
        )
        by_root: dict[str, list[str]] = {}
        for row in found:
            by_root.setdefault(row.root_id, []).append(row.user_id)
        wanted = {u for ids in by_root.values() for u in ids}
        users = {u["id"]: u for u in await self.users.get_many(sorted(wanted))}
        return {root: [users[u] for u in ids if u in users] or [] for root, ids in by_root.items()}

    @staticmethod
    async def reactions_for(
        conn: AsyncConnection, post_ids: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        ids = sorted(set(post_ids))
        if not ids:
            return {}
        found = await conn.execute(
            select(reactions)
            .where(reactions.c.post_id.in_(ids), reactions.c.delete_at == 0)
            .order_by(reactions.c.create_at, reactions.c.user_id, reactions.c.emoji_name)
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for row in found:
            out.setdefault(row.post_id, []).append(reaction_json(row))
        return out

    @staticmethod
    async def files_for(
        conn: AsyncConnection, post_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """FileInfo JSON per post, read through `conn` so that files linked in the current
        transaction are seen (same rows and shape as `FilesService.infos_for_posts`)."""
        if not post_ids:
            return {}
        found: dict[str, list[dict[str, Any]]] = {}
        rows = await conn.execute(
            select(file_infos)
            .where(file_infos.c.post_id.in_(post_ids), file_infos.c.delete_at == 0)
            .order_by(file_infos.c.create_at, file_infos.c.id)
        )
        for row in rows:
            found.setdefault(row.post_id, []).append(file_info_json(row))
        return found
