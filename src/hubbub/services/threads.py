"""Collapsed reply threads: who follows which thread, what they have read, and the thread lists.

A thread is a root post with replies. Its reply count, last reply time and participants come from
the posts table (kept by `PostsService`); only each user's state is stored, in
`thread_memberships`: following or not, when they last viewed the thread, and how many mentions
of them arrived since.

How memberships change, as in Mattermost:

- A reply (`on_reply`, called by `PostsService` inside the reply's own transaction): the replier,
  the root's author and the users mentioned in the root or the reply follow the thread
  (`ServiceSettings.ThreadAutoFollow`), except those who unfollowed it and are not mentioned now;
  a mention adds to the user's unread mentions; the replier has read the thread. Every follower
  still in the channel then gets `thread_updated` with the thread as they see it.
- A deleted reply (`on_delete`) changes the counts: followers get `thread_updated` again.
- Follow/unfollow, mark read at a time, mark unread from a post, mark all read: the REST calls;
  `thread_follow_changed` / `thread_read_changed` reach the user's connections.

A user sees a thread only while a member of its channel. Lists cover the team's channels and the
user's direct and group channels, newest reply first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, forbidden, not_found
from hubbub.ids import now_ms
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.permissions import Permissions
from hubbub.services.post_model import dumps, mentioned_usernames
from hubbub.services.post_render import PostRenderer
from hubbub.services.session import Session
from hubbub.services.users import user_json
from hubbub.store.db import Database
from hubbub.store.tables import channel_members, channels, posts, thread_memberships, users

tm = thread_memberships.c


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    """`GET /users/{user_id}/teams/{team_id}/threads` options."""

    per_page: int = 60
    since: int = 0
    before: str = ""
    after: str = ""
    unread: bool = False
    deleted: bool = False
    extended: bool = False
    totals_only: bool = False
    threads_only: bool = False


@dataclass(slots=True)
class _Membership:
    following: bool
    last_viewed: int
    unread_mentions: int


def bare_user(user_id: str) -> dict[str, Any]:
    """A participant when the list is not `extended`: Mattermost's encoding of a user that only
    has its id."""
    return {
        "id": user_id,
        "delete_at": 0,
        "username": "",
        "auth_service": "",
        "email": "",
        "nickname": "",
        "first_name": "",
        "last_name": "",
        "position": "",
        "roles": "",
        "locale": "",
        "timezone": None,
        "disable_welcome_email": False,
    }


def _unread_replies() -> Any:
    """Replies after the membership's last view (a correlated subquery on `tm`)."""
    replies = posts.alias("replies")
    return (
        select(func.count())
        .select_from(replies)
        .where(
            replies.c.root_id == tm.post_id,
            replies.c.create_at > tm.last_viewed,
            replies.c.delete_at == 0,
        )
        .scalar_subquery()
    )


class ThreadsService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        channels_access: ChannelAccess,
        permissions: Permissions,
        renderer: PostRenderer,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.channels = channels_access
        self.permissions = permissions
        self.renderer = renderer
        self.events = events

    @property
    def crt_allowed(self) -> bool:
        return self.settings.ServiceSettings.CollapsedThreads != "disabled"

    # Memberships (inside a caller's transaction)

    @staticmethod
    async def _membership(conn: AsyncConnection, user_id: str, post_id: str) -> _Membership | None:
        row = (
            await conn.execute(
                select(tm.following, tm.last_viewed, tm.unread_mentions).where(
                    tm.user_id == user_id, tm.post_id == post_id
                )
            )
        ).first()
        if row is None:
            return None
        return _Membership(row.following, row.last_viewed, row.unread_mentions)

    async def _maintain(
        self,
        conn: AsyncConnection,
        user_id: str,
        post_id: str,
        *,
        following: bool,
        update_following: bool = True,
        increment_mentions: bool = False,
        viewed: bool = False,
    ) -> _Membership:
        """Mattermost's `MaintainMembership`: creates the membership, or changes following,
        mentions and the last view as asked."""
        now = now_ms()
        current = await self._membership(conn, user_id, post_id)
        if current is None:
            created = _Membership(following, now if viewed else 0, 1 if increment_mentions else 0)
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            await conn.execute(
                insert(thread_memberships)
                .values(
                    post_id=post_id,
                    user_id=user_id,
                    following=created.following,
                    last_viewed=created.last_viewed,
                    last_updated=now,
                    unread_mentions=created.unread_mentions,
                )
                .on_conflict_do_nothing(index_elements=["post_id", "user_id"])
            )
            return created
        change_follow = update_following and current.following != following
        if not (change_follow or increment_mentions or viewed):
            return current
        if change_follow:
            current.following = following
        if viewed:
            current.last_viewed, current.unread_mentions = now, 0
        elif increment_mentions:
            current.unread_mentions += 1
        await conn.execute(
            update(thread_memberships)
            .where(tm.user_id == user_id, tm.post_id == post_id)
            .values(
                following=current.following,
                last_viewed=current.last_viewed,
                unread_mentions=current.unread_mentions,
                last_updated=now,
            )
        )
        return current

    # Hooks for PostsService (inside the post's transaction)

    async def on_reply(
        self,
        conn: AsyncConnection,
        reply: Mapping[str, Any],
        channel_type: str,
        team_id: str,
        mentions: Sequence[str],
    ) -> None:
        """Follows, mention counts and `thread_updated` for a new reply `reply`."""
        root_id, author = reply["root_id"], reply["user_id"]
        root = (await conn.execute(select(posts).where(posts.c.id == root_id))).one()
        mentioned = set(mentions)
        if self.settings.ServiceSettings.ThreadAutoFollow:
            involved = {author} | mentioned
            if (root.props or {}).get("from_webhook") != "true":
                involved.add(root.user_id)
            if channel_type != "D":
                involved |= await self._mentioned_members(conn, reply["channel_id"], root.message)
            for user_id in sorted(involved):
                is_mentioned = user_id in mentioned
                if not is_mentioned:
                    existing = await self._membership(conn, user_id, root_id)
                    if existing is not None and not existing.following:
                        continue  # unfollowed, and not called back by a mention
                await self._maintain(
                    conn, user_id, root_id, following=True, increment_mentions=is_mentioned
                )
        if await self._membership(conn, author, root_id) is not None:
            await self._maintain(
                conn, author, root_id, following=True, update_following=False, viewed=True
            )
        if self.crt_allowed:
            await self._tell_followers(conn, root, team_id, mentioned, author)

    async def on_delete(self, conn: AsyncConnection, deleted: Row[Any], team_id: str) -> None:
        """A deleted reply changes its thread's counts: tell the followers."""
        if not deleted.root_id or not self.crt_allowed:
            return
        root = (await conn.execute(select(posts).where(posts.c.id == deleted.root_id))).first()
        if root is not None:
            await self._tell_followers(conn, root, team_id, set(), "")

    async def _mentioned_members(
        self, conn: AsyncConnection, channel_id: str, message: str
    ) -> set[str]:
        names = mentioned_usernames(message)
        if not names:
            return set()
        found = await conn.execute(
            select(users.c.id)
            .join(
                channel_members,
                and_(
                    channel_members.c.user_id == users.c.id,
                    channel_members.c.channel_id == channel_id,
                ),
            )
            .where(users.c.username.in_(sorted(names)))
        )
        return set(found.scalars())

    async def _tell_followers(
        self, conn: AsyncConnection, root: Row[Any], team_id: str, mentioned: set[str], author: str
    ) -> None:
        followers = await conn.execute(
            select(tm.user_id, tm.following, tm.last_viewed, tm.unread_mentions)
            .join(
                channel_members,
                and_(
                    channel_members.c.user_id == tm.user_id,
                    channel_members.c.channel_id == root.channel_id,
                ),
            )
            .where(tm.post_id == root.id, tm.following.is_(True))
            .order_by(tm.user_id)
        )
        rows = followers.all()
        if not rows:
            return
        # The same for every follower: read once.
        participants = await self._participants(conn, [root.id], True)
        rendered = await self.renderer.render(conn, [root])
        for row in rows:
            membership = _Membership(row.following, row.last_viewed, row.unread_mentions)
            thread = await self._thread_json(
                conn, root, row.user_id, membership, True, participants, rendered
            )
            previous_replies = previous_mentions = 0
            if author and row.user_id != author:
                previous_replies = max(thread["unread_replies"] - 1, 0)
                previous_mentions = thread["unread_mentions"] - (
                    1 if row.user_id in mentioned else 0
                )
            elif not author:
                previous_replies, previous_mentions = (
                    thread["unread_replies"],
                    thread["unread_mentions"],
                )
            await self.events.publish(
                Event(
                    "thread_updated",
                    {
                        "thread": dumps(thread),
                        "previous_unread_mentions": max(previous_mentions, 0),
                        "previous_unread_replies": previous_replies,
                    },
                    Broadcast(user_id=row.user_id, team_id=team_id),
                ),
                conn,
            )

    # Rendering

    async def _participants(
        self, conn: AsyncConnection, root_ids: Sequence[str], extended: bool
    ) -> dict[str, list[dict[str, Any]]]:
        """Per thread, the users who replied, the most recent replier last (Mattermost's order)."""
        if not root_ids:
            return {}
        last = func.max(posts.c.create_at).label("last_at")
        found = await conn.execute(
            select(posts.c.root_id, posts.c.user_id, last)
            .where(posts.c.root_id.in_(list(root_ids)), posts.c.delete_at == 0)
            .group_by(posts.c.root_id, posts.c.user_id)
            .order_by(last, posts.c.user_id)
        )
        by_root: dict[str, list[str]] = {}
        for row in found:
            by_root.setdefault(row.root_id, []).append(row.user_id)
        profiles: dict[str, dict[str, Any]] = {}
        wanted = sorted({u for ids in by_root.values() for u in ids})
        if extended and wanted:
            rows = await conn.execute(select(users).where(users.c.id.in_(wanted)))
            profiles = {r.id: user_json(r) for r in rows}
        return {
            root: [profiles.get(u) or bare_user(u) for u in ids] for root, ids in by_root.items()
        }

    async def _thread_json(
        self,
        conn: AsyncConnection,
        root: Row[Any],
        user_id: str,
        membership: _Membership,
        extended: bool,
        participants: Mapping[str, list[dict[str, Any]]] | None = None,
        rendered: Mapping[str, dict[str, Any]] | None = None,
        unread_replies: int | None = None,
    ) -> dict[str, Any]:
        if participants is None:
            participants = await self._participants(conn, [root.id], extended)
        if rendered is None:
            rendered = await self.renderer.render(conn, [root])
        if unread_replies is None:
            unread_replies = int(
                (
                    await conn.execute(
                        select(func.count()).where(
                            posts.c.root_id == root.id,
                            posts.c.create_at > membership.last_viewed,
                            posts.c.delete_at == 0,
                        )
                    )
                ).scalar_one()
            )
        return {
            "id": root.id,
            "reply_count": root.reply_count,
            "last_reply_at": root.last_reply_at,
            "last_viewed_at": membership.last_viewed,
            "participants": participants.get(root.id, []),
            "post": rendered[root.id],
            "unread_replies": unread_replies,
            "unread_mentions": membership.unread_mentions,
            "is_urgent": False,
            "delete_at": root.delete_at,
        }

    # Checks shared by the REST calls

    async def _check_user(self, session: Session, user_id: str) -> None:
        await self.permissions.require_user(session, user_id)

    async def _root(self, session: Session, thread_id: str) -> Row[Any]:
        """The thread's root post if the caller may read its channel."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(posts).where(posts.c.id == thread_id))).first()
        if row is None:
            raise not_found("post", "app.post.get.app_error")
        await self.channels.require_read(session, row.channel_id)
        return row

    # REST

    async def for_user(
        self, session: Session, user_id: str, team_id: str, q: ThreadQuery
    ) -> dict[str, Any]:
        await self._check_user(session, user_id)
        if not await self.permissions.has_for_team(session, team_id, "view_team"):
            raise forbidden("view_team")
        if q.before and q.after:
            raise AppError(
                "api.getThreadsForUser.bad_params",
                "Before and After parameters to getThreadsForUser are mutually exclusive",
                400,
            )
        root = posts.alias("root")
        joined = (
            thread_memberships.join(root, root.c.id == tm.post_id)
            .join(channels, channels.c.id == root.c.channel_id)
            .join(
                channel_members,
                and_(
                    channel_members.c.channel_id == root.c.channel_id,
                    channel_members.c.user_id == tm.user_id,
                ),
            )
        )
        conditions = [
            tm.user_id == user_id,
            tm.following.is_(True),
            root.c.reply_count > 0,
            or_(channels.c.team_id == team_id, channels.c.team_id == ""),
        ]
        if not q.deleted:
            conditions.append(root.c.delete_at == 0)
        unread_cond = tm.last_viewed < root.c.last_reply_at
        result: dict[str, Any] = {
            "total": 0,
            "total_unread_threads": 0,
            "total_unread_mentions": 0,
            "total_unread_urgent_mentions": 0,
            "threads": [],
        }
        async with self.db.read() as conn:
            if not q.threads_only:
                totals = (
                    await conn.execute(
                        select(
                            func.count(),
                            func.coalesce(func.sum(case((unread_cond, 1), else_=0)), 0),
                            func.coalesce(func.sum(tm.unread_mentions), 0),
                        )
                        .select_from(joined)
                        .where(*conditions)
                    )
                ).one()
                result["total"] = int(totals[0])
                result["total_unread_threads"] = int(totals[1])
                result["total_unread_mentions"] = int(totals[2])
                if q.unread:
                    result["total"] = result["total_unread_threads"]
            if q.totals_only:
                return result
            listed = list(conditions)
            if q.since > 0:
                listed.append(or_(tm.last_updated >= q.since, root.c.last_reply_at >= q.since))
            if q.unread:
                listed.append(unread_cond)
            ascending = False
            if q.before:
                pivot = (
                    select(posts.c.last_reply_at).where(posts.c.id == q.before).scalar_subquery()
                )
                listed.append(root.c.last_reply_at < pivot)
            if q.after:
                ascending = True
                pivot = select(posts.c.last_reply_at).where(posts.c.id == q.after).scalar_subquery()
                listed.append(root.c.last_reply_at > pivot)
            order = (
                (root.c.last_reply_at.asc(), root.c.id.asc())
                if ascending
                else (root.c.last_reply_at.desc(), root.c.id.desc())
            )
            rows = (
                await conn.execute(
                    select(
                        root,
                        tm.following.label("m_following"),
                        tm.last_viewed.label("m_last_viewed"),
                        tm.unread_mentions.label("m_unread_mentions"),
                        _unread_replies().label("m_unread_replies"),
                    )
                    .select_from(joined)
                    .where(*listed)
                    .order_by(*order)
                    .limit(q.per_page)
                )
            ).all()
            ids = [r.id for r in rows]
            participants = await self._participants(conn, ids, q.extended)
            rendered = await self.renderer.render(conn, rows)
            result["threads"] = [
                await self._thread_json(
                    conn,
                    r,
                    user_id,
                    _Membership(r.m_following, r.m_last_viewed, r.m_unread_mentions),
                    q.extended,
                    participants,
                    rendered,
                    int(r.m_unread_replies),
                )
                for r in rows
            ]
        return result

    async def get(
        self, session: Session, user_id: str, team_id: str, thread_id: str, extended: bool
    ) -> dict[str, Any]:
        await self._check_user(session, user_id)
        root = await self._root(session, thread_id)
        async with self.db.read() as conn:
            membership = await self._membership(conn, user_id, thread_id)
            if membership is None:
                raise AppError(
                    "app.user.get_thread_membership_for_user.not_found",
                    "Unable to get user thread membership.",
                    404,
                )
            if not membership.following:
                raise AppError(
                    "app.user.get_threads_for_user.not_found",
                    "Unable to get user threads.",
                    404,
                )
            return await self._thread_json(conn, root, user_id, membership, extended)

    async def set_following(
        self, session: Session, user_id: str, team_id: str, thread_id: str, state: bool
    ) -> None:
        await self._check_user(session, user_id)
        root = await self._root(session, thread_id)
        async with self.db.write() as conn:
            await self._maintain(conn, user_id, thread_id, following=state, viewed=state)
            count = (
                await conn.execute(select(posts.c.reply_count).where(posts.c.id == root.id))
            ).scalar_one()
            await self.events.publish(
                Event(
                    "thread_follow_changed",
                    {"thread_id": thread_id, "state": state, "reply_count": int(count)},
                    Broadcast(user_id=user_id, team_id=team_id),
                ),
                conn,
            )

    async def mark_read(
        self, session: Session, user_id: str, team_id: str, thread_id: str, timestamp: int
    ) -> dict[str, Any]:
        await self._check_user(session, user_id)
        root = await self._root(session, thread_id)
        return await self._read_at(user_id, team_id, root, timestamp)

    async def set_unread(
        self, session: Session, user_id: str, team_id: str, thread_id: str, post_id: str
    ) -> dict[str, Any]:
        await self._check_user(session, user_id)
        root = await self._root(session, thread_id)
        async with self.db.read() as conn:
            post = (
                await conn.execute(
                    select(posts.c.id, posts.c.root_id, posts.c.create_at).where(
                        posts.c.id == post_id, posts.c.delete_at == 0
                    )
                )
            ).first()
        if post is None:
            raise not_found("post", "app.post.get.app_error")
        if post.root_id != thread_id and post.id != thread_id:
            raise AppError(
                "app.user.update_thread_read_for_user_by_post.app_error",
                "Unable to update the thread's read state: the post is not in the thread.",
                400,
            )
        return await self._read_at(user_id, team_id, root, post.create_at - 1)

    async def _read_at(
        self, user_id: str, team_id: str, root: Row[Any], timestamp: int
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            user = (
                await conn.execute(select(users.c.username).where(users.c.id == user_id))
            ).first()
            if user is None:
                raise not_found("user", "app.user.missing_account.const")
            membership = await self._maintain(conn, user_id, root.id, following=True)
            before = await self._thread_json(conn, root, user_id, membership, False)
            channel_type = (
                await conn.execute(select(channels.c.type).where(channels.c.id == root.channel_id))
            ).scalar_one()
            mentions = await self._mentions_after(
                conn, root, user_id, user.username, channel_type, timestamp
            )
            await conn.execute(
                update(thread_memberships)
                .where(tm.user_id == user_id, tm.post_id == root.id)
                .values(last_viewed=timestamp, unread_mentions=mentions, last_updated=now_ms())
            )
            after = _Membership(True, timestamp, mentions)
            thread = await self._thread_json(conn, root, user_id, after, False)
            await self.events.publish(
                Event(
                    "thread_read_changed",
                    {
                        "thread_id": root.id,
                        "timestamp": timestamp,
                        "unread_mentions": mentions,
                        "unread_replies": thread["unread_replies"],
                        "previous_unread_mentions": before["unread_mentions"],
                        "previous_unread_replies": before["unread_replies"],
                        "channel_id": root.channel_id,
                    },
                    Broadcast(user_id=user_id, team_id=team_id),
                ),
                conn,
            )
        return thread

    @staticmethod
    async def _mentions_after(
        conn: AsyncConnection,
        root: Row[Any],
        user_id: str,
        username: str,
        channel_type: str,
        timestamp: int,
    ) -> int:
        """Replies after `timestamp` that mention the user (every reply of the other person in
        a direct channel)."""
        replies = await conn.execute(
            select(posts.c.message).where(
                posts.c.root_id == root.id,
                posts.c.create_at > timestamp,
                posts.c.delete_at == 0,
                posts.c.user_id != user_id,
            )
        )
        messages = list(replies.scalars())
        if channel_type == "D":
            return len(messages)
        return sum(1 for m in messages if username.lower() in mentioned_usernames(m))

    async def mark_all_read(self, session: Session, user_id: str, team_id: str) -> None:
        await self._check_user(session, user_id)
        now = now_ms()
        in_team = (
            select(posts.c.id)
            .join(channels, channels.c.id == posts.c.channel_id)
            .where(or_(channels.c.team_id == team_id, channels.c.team_id == ""))
        )
        async with self.db.write() as conn:
            await conn.execute(
                update(thread_memberships)
                .where(tm.user_id == user_id, tm.post_id.in_(in_team))
                .values(last_viewed=now, unread_mentions=0, last_updated=now)
            )
            await self.events.publish(
                Event("thread_read_changed", {}, Broadcast(user_id=user_id, team_id=team_id)),
                conn,
            )
