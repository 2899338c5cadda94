"""Reactions: save (idempotent), remove, list; keeps `posts.has_reactions` and `update_at` right.

Reactions are soft-deleted (`delete_at`) as in Mattermost, so re-adding one revives the row. The
`reaction_added`/`reaction_removed` events go to the post's channel, published inside the write
transaction that made the change. A new reaction names a system emoji or an existing custom one
(`EmojiService`), as in Mattermost.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError, bad_param, not_found
from hubbub.ids import is_valid_id, now_ms
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_model import channel_json
from hubbub.services.channel_seq import EXTRA_KEY, next_event_seq
from hubbub.services.emoji import EmojiService
from hubbub.services.post_model import bumped_update_at, check_emoji_name, dumps, reaction_json
from hubbub.services.post_render import PostRenderer, PostRow
from hubbub.services.session import Session
from hubbub.services.system_emoji import SYSTEM_EMOJI_NAMES
from hubbub.store.db import Database
from hubbub.store.tables import posts, reactions


class ReactionsService:
    def __init__(
        self, db: Database, channels: ChannelAccess, emoji: EmojiService, events: EventPublisher
    ) -> None:
        self.db = db
        self.channels = channels
        self.emoji = emoji
        self.events = events

    async def _check_exists(self, name: str) -> None:
        """A reaction is a system emoji or an existing custom one (Mattermost 9+): otherwise
        404 `app.emoji.get_by_name.no_result`, or 403 when custom emoji are off."""
        if name in SYSTEM_EMOJI_NAMES:
            return
        if not self.emoji.enabled:
            raise AppError(
                "api.emoji.disabled.app_error",
                "Custom emoji have been disabled by the system admin.",
                403,
            )
        await self.emoji.by_name(name)

    async def _readable_post(
        self, session: Session, post_id: str, permission: str = ""
    ) -> tuple[PostRow, Any]:
        """The post and its channel's JSON if the caller may read the channel or, with
        `permission`, holds that permission on it (Mattermost checks only that one)."""
        async with self.db.read() as conn:
            post = (
                await conn.execute(
                    select(posts).where(posts.c.id == post_id, posts.c.delete_at == 0)
                )
            ).first()
        if post is None:
            raise not_found("post", "app.post.get.app_error")
        if not permission:
            return post, await self.channels.require_read(session, post.channel_id)
        row = await self.channels.get_row(post.channel_id)
        await self.channels.require(session, row, permission)
        return post, channel_json(row)

    async def save(
        self, session: Session, user_id: str, post_id: str, emoji_name: str
    ) -> dict[str, Any]:
        """`POST /reactions`: the reaction, created or already there (then nothing is sent)."""
        if not is_valid_id(user_id):
            raise bad_param("user_id")
        if not is_valid_id(post_id):
            raise bad_param("post_id")
        check_emoji_name(emoji_name)
        if user_id != session.user_id:
            raise AppError(
                "api.reaction.save_reaction.user_id.app_error",
                "You cannot save a reaction for another user.",
                403,
            )
        post, channel = await self._readable_post(session, post_id, "add_reaction")
        await self._check_exists(emoji_name)
        if channel.get("delete_at"):
            raise AppError(
                "api.reaction.save.archived_channel.app_error",
                "You cannot react to a post in an archived channel.",
                403,
            )
        key = and_(
            reactions.c.user_id == user_id,
            reactions.c.post_id == post_id,
            reactions.c.emoji_name == emoji_name,
        )
        async with self.db.write() as conn:
            existing = (await conn.execute(select(reactions).where(key))).first()
            if existing is not None and not existing.delete_at:
                return reaction_json(existing)
            now = now_ms()
            if existing is not None:
                await conn.execute(
                    update(reactions)
                    .where(key)
                    .values(delete_at=0, update_at=now, channel_id=post.channel_id)
                )
            else:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(reactions).values(
                                user_id=user_id,
                                post_id=post_id,
                                emoji_name=emoji_name,
                                create_at=now,
                                update_at=now,
                                delete_at=0,
                                channel_id=post.channel_id,
                            )
                        )
                except IntegrityError:
                    # The same reaction saved concurrently (another node): it is there now.
                    found = (await conn.execute(select(reactions).where(key))).one()
                    return reaction_json(found)
            await conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(has_reactions=True, update_at=bumped_update_at(now))
            )
            reaction = reaction_json((await conn.execute(select(reactions).where(key))).one())
            await self._publish(conn, "reaction_added", reaction, post.channel_id)
        return reaction

    async def delete(self, session: Session, user_id: str, post_id: str, emoji_name: str) -> None:
        """`DELETE /users/{user_id}/posts/{post_id}/reactions/{emoji_name}`."""
        check_emoji_name(emoji_name)
        post, channel = await self._readable_post(session, post_id, "remove_reaction")
        if user_id != session.user_id:
            await self.channels.require(
                session, await self.channels.get_row(post.channel_id), "remove_others_reactions"
            )
        if channel.get("delete_at"):
            raise AppError(
                "api.reaction.delete.archived_channel.app_error",
                "You cannot remove a reaction in an archived channel.",
                403,
            )
        key = and_(
            reactions.c.user_id == user_id,
            reactions.c.post_id == post_id,
            reactions.c.emoji_name == emoji_name,
            reactions.c.delete_at == 0,
        )
        async with self.db.write() as conn:
            row = (await conn.execute(select(reactions).where(key))).first()
            if row is None:
                return
            now = now_ms()
            await conn.execute(update(reactions).where(key).values(delete_at=now, update_at=now))
            still = exists().where(reactions.c.post_id == post_id, reactions.c.delete_at == 0)
            await conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(has_reactions=still, update_at=bumped_update_at(now))
            )
            reaction = {**reaction_json(row), "update_at": now, "delete_at": now}
            await self._publish(conn, "reaction_removed", reaction, post.channel_id)

    async def _publish(
        self, conn: AsyncConnection, name: str, reaction: dict[str, Any], channel_id: str
    ) -> None:
        seq = await next_event_seq(conn, channel_id)
        await self.events.publish(
            Event(
                name,
                {"reaction": dumps(reaction)},
                Broadcast(channel_id=channel_id),
                extra={EXTRA_KEY: seq},
            ),
            conn,
        )

    async def for_post(self, session: Session, post_id: str) -> list[dict[str, Any]]:
        await self._readable_post(session, post_id)
        async with self.db.read() as conn:
            found = await PostRenderer.reactions_for(conn, [post_id])
        return found.get(post_id, [])

    async def for_posts(self, session: Session, post_ids: list[str]) -> dict[str, list[Any]]:
        """`POST /posts/ids/reactions`: every requested id maps to a list (empty if none)."""
        for post_id in post_ids:
            if not is_valid_id(post_id):
                raise bad_param("post_ids")
        ids = sorted(set(post_ids))
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(posts.c.id, posts.c.channel_id).where(
                        posts.c.id.in_(ids), posts.c.delete_at == 0
                    )
                )
            ).all()
        for channel_id in sorted({r.channel_id for r in rows}):
            await self.channels.require_read(session, channel_id)
        async with self.db.read() as conn:
            found = await PostRenderer.reactions_for(conn, [r.id for r in rows])
        return {post_id: found.get(post_id, []) for post_id in ids}
