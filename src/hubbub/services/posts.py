"""Posts: create (idempotent by pending_post_id), read, edit, pin, delete, ephemeral posts.

A post is written in one transaction with everything it changes: the channel row (`last_post_at`,
`last_root_post_at`, the message totals, the event sequence), the root of a reply
(`reply_count`, `last_reply_at`), the author's membership (marked read, as Mattermost does for the
poster), the mention counts of mentioned members, the attached files, the `posted` event and,
for a reply, the thread bookkeeping of `ThreadsService` (follows, unread mentions,
`thread_updated`).

Reading lists of posts (history, threads, pinned, by id) lives in `PostLists` and reactions in
`ReactionsService`, peers of this service; rendering rows into Post JSON is `PostRenderer`'s, given
to this service by the composition root. `post_model.post_json` renders a single row.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Row, and_, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.batching import Batcher
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, not_found
from hubbub.ids import new_id, now_ms
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_seq import EXTRA_KEY, next_event_seq
from hubbub.services.files import FilesService
from hubbub.services.permissions import Permissions
from hubbub.services.post_model import (
    EPHEMERAL_TYPE,
    MAX_FILE_IDS,
    PROP_FROM_BOT,
    SYSTEM_TYPE_PREFIX,
    as_mapping,
    bumped_update_at,
    check_message,
    dumps,
    mentioned_usernames,
    pending_key,
    post_json,
)
from hubbub.services.post_render import PostRenderer, PostRow, PostValues
from hubbub.services.post_statements import (
    BUMP_CHANNEL,
    INSERT_POST,
    MARK_READ,
    PENDING_POST,
    POST_CONTEXT,
)
from hubbub.services.session import Session
from hubbub.services.statuses import status_json
from hubbub.services.threads import ThreadsService
from hubbub.store.audience import CHANNEL_MEMBERS, split_members
from hubbub.store.db import Database
from hubbub.store.pipeline import execute_all
from hubbub.store.tables import channel_members, posts, users

log = logging.getLogger("hubbub.posts")


@dataclass(frozen=True, slots=True)
class NewPost:
    channel_id: str
    message: str = ""
    root_id: str = ""
    file_ids: tuple[str, ...] = ()
    props: Mapping[str, Any] = field(default_factory=dict)
    pending_post_id: str = ""
    type: str = ""


class _Totals(NamedTuple):
    """The channel after a post's `BUMP_CHANNEL`."""

    event_seq: int
    last_post_at: int
    total_msg_count: int
    total_msg_count_root: int


@dataclass(frozen=True, slots=True)
class CreatedPost:
    """A new post (or the one a retry found) and its author's status (`status_json`) as read in
    the post's transaction, for the `set_online` that follows."""

    post: dict[str, Any]
    author_status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PostChanges:
    """A PostPatch: `None` leaves a field as it is."""

    message: str | None = None
    props: Mapping[str, Any] | None = None
    is_pinned: bool | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A post waiting for its batch (`PostsService._create_many`)."""

    session: Session
    new: NewPost
    set_online: bool
    key: str  # `pending_key` of its pending_post_id, '' without one


_Outcome = CreatedPost | Exception


class _Refused(Exception):
    """A post its checks refused before it wrote anything: the rest of its batch goes on."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error)
        self.error = error


# What the write transactions of posts are timed as (`mattermost_db_store_time`'s `method`): one
# store call per transaction, whether it writes one post or a batch.
_STORE_METHOD = "PostsService.create"
_NOT_WRITTEN: _Outcome = RuntimeError("the post's batch gave it no outcome")
# Posts in one transaction at most: the writer is held for the whole batch.
MAX_BATCH = 32


class PostsService:
    """Writes of posts (create, edit, pin, delete, ephemeral) and reading a single post."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        channels: ChannelAccess,
        permissions: Permissions,
        files: FilesService,
        renderer: PostRenderer,
        threads: ThreadsService,
        events: EventPublisher,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        self.channels = channels
        self.permissions = permissions
        self.files = files
        self.renderer = renderer
        self.threads = threads
        self._tickets = itertools.count()
        self._batcher: Batcher[int, _Pending, _Outcome] = Batcher(
            self._create_many, _NOT_WRITTEN, max_batch=MAX_BATCH
        )

    @property
    def max_post_size(self) -> int:
        return self.settings.ServiceSettings.MaxPostSize

    # Reading single posts

    async def get(
        self, session: Session, post_id: str, include_deleted: bool = False
    ) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await self._row(conn, post_id, include_deleted)
            if include_deleted:
                channel = await self.channels.get_row(row.channel_id, conn)
                await self.channels.require(session, channel, "read_deleted_posts")
            await self.channels.require_read(session, row.channel_id)
            return (await self.renderer.render(conn, [row]))[row.id]

    @staticmethod
    async def _row(conn: AsyncConnection, post_id: str, include_deleted: bool = False) -> PostRow:
        query = select(posts).where(posts.c.id == post_id)
        if not include_deleted:
            query = query.where(posts.c.delete_at == 0)
        row = (await conn.execute(query)).first()
        if row is None:
            raise not_found("post", "app.post.get.app_error")
        return row

    # Creating

    async def create(self, session: Session, new: NewPost, set_online: bool = True) -> CreatedPost:
        """Creates a post; a retry with the same `pending_post_id` returns the first one.

        On SQLite the posts that arrive while the previous ones are being written share the next
        write transaction (`_create_many`); each keeps its own checks, its own answer and its own
        `posted` event, sequenced in commit order."""
        if new.type.startswith(SYSTEM_TYPE_PREFIX):
            raise AppError(
                "api.context.invalid_param.app_error",
                "Invalid or missing post.type parameter.",
                400,
            )
        check_message(new.message, self.max_post_size)
        if len(new.file_ids) > MAX_FILE_IDS:
            raise AppError(
                "model.post.is_valid.file_ids.app_error",
                f"A post can have at most {MAX_FILE_IDS} files.",
                400,
            )
        key = pending_key(new.pending_post_id) if new.pending_post_id else ""
        pending = _Pending(session, new, set_online, key)
        if not self.db.is_sqlite:
            # PostgreSQL writes posts concurrently, each in its own transaction: a batch would
            # queue a node's posts behind one another (and behind one slow commit or outbox
            # publish). SQLite's single writer queues them anyway; there they share it.
            try:
                async with self.db.write(method=_STORE_METHOD) as conn:
                    return await self._create_in(conn, pending)
            except _Refused as refused:
                raise refused.error from None
        outcome = await self._batcher.submit(next(self._tickets), pending)
        if isinstance(outcome, Exception):
            raise outcome
        # Committed by the batch, outside this request: its read-your-writes position.
        await self.db.note_outside_write()
        return outcome

    async def _create_many(self, batch: dict[int, _Pending]) -> dict[int, _Outcome]:
        """A batch of posts (`Batcher`), in one transaction. A post its checks refuse has
        written nothing and gets its error while the others go on; a post that fails once it
        has written leaves the transaction in no state to commit, so none of the batch is
        committed and each post is created again in a transaction of its own."""
        if len(batch) > 1:
            try:
                return await self._write_together(batch)
            except Exception:
                log.info("a batch of %d posts failed; creating them one by one", len(batch))
        return {ticket: await self._write_alone(pending) for ticket, pending in batch.items()}

    async def _write_together(self, batch: dict[int, _Pending]) -> dict[int, _Outcome]:
        outcomes: dict[int, _Outcome] = {}
        async with self.db.write(method=_STORE_METHOD) as conn:
            for ticket, pending in batch.items():
                try:
                    outcomes[ticket] = await self._create_in(conn, pending)
                except _Refused as refused:
                    outcomes[ticket] = refused.error
        return outcomes

    async def _write_alone(self, pending: _Pending) -> _Outcome:
        try:
            async with self.db.write(method=_STORE_METHOD) as conn:
                return await self._create_in(conn, pending)
        except _Refused as refused:
            return refused.error
        except Exception as error:
            return error

    async def _create_in(self, conn: AsyncConnection, pending: _Pending) -> CreatedPost:
        """One post in the write transaction `conn`. The checks read the channel, the
        membership, the author and the author's status in one statement, then the root of a
        reply and the members mentioned; an `AppError` from them comes out as `_Refused` (the
        post wrote nothing). Then the post is written, its `posted` event published and, for a
        reply, its thread's bookkeeping done."""
        session, new, key = pending.session, pending.new, pending.key
        user_id = session.user_id
        try:
            params = {"p_channel_id": new.channel_id, "p_user_id": user_id, "p_key": key}
            (context,) = await execute_all(conn, [(POST_CONTEXT, params)])
            found_ctx = context[0] if context else None
            member = found_ctx if found_ctx is not None and found_ctx.member_user_id else None
            ctx = await self.channels.check_post(session, found_ctx, member)
            status = status_json(user_id, None if ctx.status is None else ctx._asdict())
            if ctx.pending_post is not None:
                found = await self._pending_row(conn, user_id, key)
                if found is not None:
                    return CreatedPost(await self._render_new(conn, found, new), status)
            if ctx.username is None:
                raise not_found("user", "app.user.missing_account.const")
            if new.root_id:
                await self._check_root(conn, new.root_id, ctx.id)
            mentions = await self._mentions(conn, ctx, user_id, new.message)
        except AppError as error:
            raise _Refused(error) from error
        props = dict(new.props)
        if ctx.is_bot:
            props[PROP_FROM_BOT] = "true"
        if key and not self.db.is_sqlite:
            # PostgreSQL: another node may commit the same pending_post_id after the lookup
            # above. On SQLite the write lock (BEGIN IMMEDIATE) rules that out.
            try:
                async with conn.begin_nested():
                    row, totals, members = await self._insert(
                        conn, user_id, ctx.id, new, props, key
                    )
            except IntegrityError:
                # The same pending_post_id committed meanwhile (on this node or another).
                existing = await self._pending_row(conn, user_id, key)
                if existing is None:
                    raise
                return CreatedPost(await self._render_new(conn, existing, new), status)
        else:
            row, totals, members = await self._insert(conn, user_id, ctx.id, new, props, key)
        await self._count_mentions(conn, row, mentions)
        post = await self._render_new(conn, row, new)
        data: dict[str, Any] = {
            "post": dumps(post),
            "channel_type": ctx.type,
            "channel_display_name": ctx.username if ctx.type == "D" else ctx.display_name,
            "channel_name": ctx.name,
            "sender_name": "@" + ctx.username,
            "team_id": ctx.team_id,
            "set_online": pending.set_online,
        }
        if mentions:
            data["mentions"] = dumps(mentions)
        await self.events.publish(
            Event(
                "posted",
                data,
                Broadcast(channel_id=ctx.id, members=members),
                extra={EXTRA_KEY: int(totals.event_seq)},
            ),
            conn,
        )
        # Thread bookkeeping (follows, unread mentions, `thread_updated`), after `posted`.
        if new.root_id:
            await self.threads.on_reply(conn, row, ctx.type, ctx.team_id, mentions)
        return CreatedPost(post, status)

    async def _insert(
        self,
        conn: AsyncConnection,
        user_id: str,
        channel_id: str,
        new: NewPost,
        props: dict[str, Any],
        key: str,
    ) -> tuple[dict[str, Any], _Totals, tuple[str, ...]]:
        """Inserts the post, updates its channel and root and marks the channel read for the
        author; returns the post's values, the channel's totals after it and its members (the
        `posted` event's recipients, read in the same trip).

        The files are attached first (writes keyed by the new post's id; the root of a reply
        was checked by the caller); then the channel's bump, the post and the author's
        membership run back to back (`execute_all`: one trip to SQLite's thread), the post
        reading its create_at from the bumped channel; the root's counts take that create_at
        last."""
        post_id = new_id()
        file_ids = (
            await self.files.attach(conn, list(new.file_ids), post_id, channel_id, user_id)
            if new.file_ids
            else []
        )
        who = {"p_channel_id": channel_id, "p_user_id": user_id}
        now = now_ms()
        bumped, _, _, joined = await execute_all(
            conn,
            [
                (BUMP_CHANNEL, {**who, "p_now": now, "p_roots": 0 if new.root_id else 1}),
                (
                    INSERT_POST,
                    {
                        **who,
                        "p_post_id": post_id,
                        "p_root_id": new.root_id,
                        "p_message": new.message,
                        "p_type": new.type,
                        "p_props": props,
                        "p_file_ids": file_ids,
                        "p_key": key,
                    },
                ),
                (MARK_READ, {**who, "p_update_at": now}),
                (CHANNEL_MEMBERS, {"p_channel_id": channel_id}),
            ],
        )
        if not bumped:
            raise not_found("channel", "app.channel.get.existing.app_error")
        totals = _Totals(*bumped[0])
        create_at = totals.last_post_at
        if new.root_id:
            await self._count_reply(conn, new.root_id, create_at)
        values = {
            "id": post_id,
            "create_at": create_at,
            "update_at": create_at,
            "edit_at": 0,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": user_id,
            "channel_id": channel_id,
            "root_id": new.root_id,
            "original_id": "",
            "message": new.message,
            "type": new.type,
            "props": props,
            "hashtags": "",
            "file_ids": file_ids,
            "pending_post_id": key,
            "has_reactions": False,
            "reply_count": 0,
            "last_reply_at": 0,
        }
        return values, totals, tuple(split_members(joined[0][0]))

    @staticmethod
    async def _check_root(conn: AsyncConnection, root_id: str, channel_id: str) -> None:
        root = (
            await conn.execute(
                select(posts.c.channel_id, posts.c.root_id).where(
                    posts.c.id == root_id, posts.c.delete_at == 0
                )
            )
        ).first()
        if root is None or root.root_id:
            raise AppError(
                "api.post.create_post.root_id.app_error", "Invalid RootId parameter.", 400
            )
        if root.channel_id != channel_id:
            raise AppError(
                "api.post.create_post.channel_root_id.app_error",
                "Invalid ChannelId for RootId parameter.",
                400,
            )

    @staticmethod
    async def _count_reply(conn: AsyncConnection, root_id: str, create_at: int) -> None:
        changed = await conn.execute(
            update(posts)
            .where(posts.c.id == root_id, posts.c.delete_at == 0)
            .values(
                reply_count=posts.c.reply_count + 1,
                last_reply_at=case(
                    (posts.c.last_reply_at < create_at, create_at), else_=posts.c.last_reply_at
                ),
                update_at=bumped_update_at(create_at),
            )
        )
        if changed.rowcount != 1:  # deleted since the check above
            raise AppError(
                "api.post.create_post.root_id.app_error", "Invalid RootId parameter.", 400
            )

    async def _count_mentions(
        self, conn: AsyncConnection, post: Mapping[str, Any], mentions: list[str]
    ) -> None:
        """Counts the post's mentions for the members mentioned, as Mattermost does."""
        if not mentions:
            return
        await conn.execute(
            update(channel_members)
            .where(
                channel_members.c.channel_id == post["channel_id"],
                channel_members.c.user_id.in_(mentions),
            )
            .values(
                mention_count=channel_members.c.mention_count + 1,
                mention_count_root=channel_members.c.mention_count_root
                + (0 if post["root_id"] else 1),
                last_update_at=now_ms(),
            )
        )

    @staticmethod
    async def _mentions(
        conn: AsyncConnection, channel: Row[Any], author_id: str, message: str
    ) -> list[str]:
        """Members mentioned with `@username` (never the author); in a direct channel the other
        member is always mentioned, as in Mattermost."""
        mentioned: set[str] = set()
        if channel.type == "D":
            found = await conn.execute(
                select(channel_members.c.user_id).where(channel_members.c.channel_id == channel.id)
            )
            mentioned.update(found.scalars())
        names = mentioned_usernames(message)
        if names:
            member = and_(
                channel_members.c.channel_id == channel.id,
                channel_members.c.user_id == users.c.id,
            )
            found = await conn.execute(
                select(users.c.id)
                .join(channel_members, member)
                .where(users.c.username.in_(sorted(names)))
            )
            mentioned.update(found.scalars())
        mentioned.discard(author_id)
        return sorted(mentioned)

    @staticmethod
    async def _pending_row(conn: AsyncConnection, user_id: str, key: str) -> PostRow | None:
        return (await conn.execute(PENDING_POST, {"p_user_id": user_id, "p_key": key})).first()

    async def _render_new(
        self, conn: AsyncConnection, row: PostValues, new: NewPost
    ) -> dict[str, Any]:
        """The created post as its author sees it: with the pending_post_id sent."""
        post_id = as_mapping(row)["id"]
        return (await self.renderer.render(conn, [row], {post_id: new.pending_post_id}))[post_id]

    # Editing

    async def patch(
        self, session: Session, post_id: str, changes: PostChanges, full: bool = False
    ) -> dict[str, Any]:
        """`PUT /posts/{id}/patch` and (with `full`) `PUT /posts/{id}`: `edit_post` on the
        channel, and `edit_others_posts` for someone else's post (Mattermost's order)."""
        async with self.db.read() as conn:
            row = await self._row(conn, post_id)
            channel = await self.channels.get_row(row.channel_id, conn)
        await self.channels.require(session, channel, "edit_post")
        if row.user_id != session.user_id:
            await self.channels.require(session, channel, "edit_others_posts")
        if changes.message is not None:
            check_message(changes.message, self.max_post_size)
        return await self._update(session, row, changes, keep_bot_prop=full)

    async def set_pinned(self, session: Session, post_id: str, pinned: bool) -> None:
        """`POST /posts/{id}/pin|unpin`: `read_channel_content` on the channel, as Mattermost."""
        async with self.db.read() as conn:
            row = await self._row(conn, post_id)
            channel = await self.channels.get_row(row.channel_id, conn)
        await self.channels.require(session, channel, "read_channel_content")
        await self._update(session, row, PostChanges(is_pinned=pinned))

    async def _update(
        self, session: Session, row: PostRow, changes: PostChanges, keep_bot_prop: bool = False
    ) -> dict[str, Any]:
        channel = await self.channels.get(row.channel_id)
        if channel.get("delete_at"):
            raise AppError(
                "api.post.update_post.can_not_update_post_in_deleted.error",
                "You cannot update a post in an archived channel.",
                400,
            )
        async with self.db.write() as conn:
            current = await self._row(conn, row.id)
            now = now_ms()
            values: dict[str, Any] = {"update_at": bumped_update_at(now)}
            if changes.message is not None and changes.message != current.message:
                values["message"] = changes.message
                values["edit_at"] = now
            if changes.props is not None:
                props = dict(changes.props)
                if keep_bot_prop and PROP_FROM_BOT in (current.props or {}):
                    props[PROP_FROM_BOT] = current.props[PROP_FROM_BOT]
                values["props"] = props
            if changes.is_pinned is not None:
                values["is_pinned"] = changes.is_pinned
            await conn.execute(update(posts).where(posts.c.id == row.id).values(**values))
            updated = await self._row(conn, row.id)
            post = (await self.renderer.render(conn, [updated]))[updated.id]
            seq = await next_event_seq(conn, updated.channel_id)
            await self.events.publish(
                Event(
                    "post_edited",
                    {"post": dumps(post)},
                    Broadcast(channel_id=updated.channel_id),
                    extra={EXTRA_KEY: seq},
                ),
                conn,
            )
        return post

    # Deleting

    async def delete(self, session: Session, post_id: str) -> None:
        """Soft delete; deleting a root deletes its replies too. `delete_post` on the channel, and
        `delete_others_posts` for someone else's post (team admins have both)."""
        async with self.db.read() as conn:
            row = await self._row(conn, post_id)
            channel = await self.channels.get_row(row.channel_id, conn)
        await self.channels.require(session, channel, "delete_post")
        if row.user_id != session.user_id:
            await self.channels.require(session, channel, "delete_others_posts")
        if channel.delete_at:
            raise AppError(
                "api.post.delete_post.can_not_delete_post_in_deleted.error",
                "You cannot delete a post in an archived channel.",
                400,
            )
        async with self.db.write() as conn:
            current = await self._row(conn, post_id)
            now = now_ms()
            deleted = posts.c.id == post_id
            if not current.root_id:
                deleted = or_(deleted, posts.c.root_id == post_id)
            ids = list(
                (
                    await conn.execute(select(posts.c.id).where(deleted, posts.c.delete_at == 0))
                ).scalars()
            )
            await conn.execute(
                update(posts)
                .where(deleted, posts.c.delete_at == 0)
                .values(delete_at=now, update_at=bumped_update_at(now))
            )
            await conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(props={**(current.props or {}), "deleteBy": session.user_id})
            )
            for gone_id in ids:
                await self.files.delete_for_post(conn, gone_id)
            if current.root_id:
                await self._recount_thread(conn, current.root_id, now)
            gone = await self._row(conn, post_id, include_deleted=True)
            post = (await self.renderer.render(conn, [gone]))[gone.id]
            seq = await next_event_seq(conn, gone.channel_id)
            await self.events.publish(
                Event(
                    "post_deleted",
                    {"post": dumps(post)},
                    Broadcast(channel_id=gone.channel_id),
                    extra={EXTRA_KEY: seq},
                ),
                conn,
            )
            # Thread bookkeeping: the followers of the reply's thread learn its new counts.
            await self.threads.on_delete(conn, gone, channel.team_id)

    @staticmethod
    async def _recount_thread(conn: AsyncConnection, root_id: str, now: int) -> None:
        replies = (
            await conn.execute(
                select(posts.c.create_at).where(posts.c.root_id == root_id, posts.c.delete_at == 0)
            )
        ).scalars()
        times = list(replies)
        await conn.execute(
            update(posts)
            .where(posts.c.id == root_id)
            .values(
                reply_count=len(times),
                last_reply_at=max(times, default=0),
                update_at=bumped_update_at(now),
            )
        )

    # Ephemeral posts

    async def ephemeral(
        self, session: Session, user_id: str, channel_id: str, message: str
    ) -> dict[str, Any]:
        """`POST /posts/ephemeral`: shown to one user, never stored (`create_post_ephemeral`)."""
        await self.permissions.require(session, "create_post_ephemeral")
        check_message(message, self.max_post_size)
        channel = await self.channels.get(channel_id)
        now = now_ms()
        row = {
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "edit_at": 0,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": session.user_id,
            "channel_id": channel["id"],
            "root_id": "",
            "original_id": "",
            "message": message,
            "type": EPHEMERAL_TYPE,
            "props": {},
            "hashtags": "",
            "file_ids": [],
            "has_reactions": False,
        }
        post = post_json(row)
        await self.events.publish(
            Event(
                "ephemeral_message",
                {"post": dumps(post)},
                Broadcast(user_id=user_id, channel_id=channel["id"]),
            )
        )
        return post
