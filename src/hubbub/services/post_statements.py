"""The statements `PostsService.create` runs on every post, built once.

Each is a constant with named parameters, so SQLAlchemy finds its compiled form through a cache
key memoized on the statement instead of building and hashing a new statement for every post (a
third of the cost of a statement on SQLite). Parameter names do not repeat column names: in an
UPDATE those are reserved for the SET clause.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    String,
    Text,
    and_,
    bindparam,
    case,
    false,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from hubbub.store.tables import channel_members, channels, posts, statuses, users

_CHANNEL = bindparam("p_channel_id", type_=String)
_USER = bindparam("p_user_id", type_=String)

# The post an earlier try with the same pending_post_id created (`p_key`, '' for none). `<> ''`
# follows from the key, but the unique index is partial and the planner must see the predicate,
# as a literal: without it, SQLite and PostgreSQL's generic plans (prepared statements) scan every
# post, and every post a web client sends has a pending_post_id.
_PENDING = (
    posts.c.user_id == _USER,
    posts.c.pending_post_id == bindparam("p_key", type_=String),
    posts.c.pending_post_id != literal_column("''"),
)
PENDING_POST = select(posts).where(*_PENDING)

# Everything a post needs to know before it is written, in one read: the channel (or no row),
# whether the author is a member, the author's username and bot flag, the author's status (NULLs
# when there is no status row) for the `set_online` that follows, and the id of the post an
# earlier try with the same pending_post_id created, if any.
POST_CONTEXT = (
    select(
        channels.c.id,
        channels.c.type,
        channels.c.name,
        channels.c.display_name,
        channels.c.team_id,
        channels.c.delete_at,
        # The caller's membership (all NULL when not a member) for the create_post check.
        channel_members.c.user_id.label("member_user_id"),
        channel_members.c.roles,
        channel_members.c.scheme_guest,
        channel_members.c.scheme_user,
        channel_members.c.scheme_admin,
        users.c.username,
        users.c.is_bot,
        statuses.c.status,
        statuses.c.manual,
        statuses.c.last_activity_at,
        statuses.c.dnd_end_time,
        statuses.c.prev_status,
        select(posts.c.id).where(*_PENDING).scalar_subquery().label("pending_post"),
    )
    .select_from(
        channels.outerjoin(
            channel_members,
            and_(channel_members.c.channel_id == channels.c.id, channel_members.c.user_id == _USER),
        )
        .outerjoin(users, users.c.id == _USER)
        .outerjoin(statuses, statuses.c.user_id == _USER)
    )
    .where(channels.c.id == _CHANNEL)
)

_NOW = bindparam("p_now", type_=BigInteger)
_ROOTS = bindparam("p_roots", type_=BigInteger)  # 1 for a root post, 0 for a reply
# Posts of a channel get strictly increasing create_at (max(now, last_post_at + 1)), so
# `before`/`after`/`since` cursors and clients that sort by time always agree.
_CREATE_AT = case((channels.c.last_post_at < _NOW, _NOW), else_=channels.c.last_post_at + 1)

# The channel's side of a new post in one statement: the next event sequence number, the post's
# create_at (the new last_post_at), and the message totals the author's membership is set to.
BUMP_CHANNEL = (
    update(channels)
    .where(channels.c.id == _CHANNEL)
    .values(
        event_seq=channels.c.event_seq + 1,
        last_post_at=_CREATE_AT,
        last_root_post_at=case(
            (and_(_ROOTS > 0, channels.c.last_root_post_at < _CREATE_AT), _CREATE_AT),
            else_=channels.c.last_root_post_at,
        ),
        total_msg_count=channels.c.total_msg_count + 1,
        total_msg_count_root=channels.c.total_msg_count_root + _ROOTS,
    )
    .returning(
        channels.c.event_seq,
        channels.c.last_post_at,
        channels.c.total_msg_count,
        channels.c.total_msg_count_root,
    )
)

_THIS_CHANNEL = channels.c.id == _CHANNEL


def _channel_column(column: ColumnElement[int]) -> ScalarSelect[int]:
    """The channel's `column` as the transaction sees it (after `BUMP_CHANNEL`)."""
    return select(column).where(_THIS_CHANNEL).scalar_subquery()


# The post itself, after `BUMP_CHANNEL` in the same transaction: its create_at is the channel's new
# last_post_at, read by the statement rather than passed in, so the three statements of a post
# can run back to back (`hubbub.store.pipeline.execute_all`) without a round trip between them.
_ZERO: ColumnElement[int] = literal_column("0")
_EMPTY: ColumnElement[str] = literal_column("''")
INSERT_POST = insert(posts).from_select(
    [
        posts.c.id,
        posts.c.create_at,
        posts.c.update_at,
        posts.c.edit_at,
        posts.c.delete_at,
        posts.c.is_pinned,
        posts.c.user_id,
        posts.c.channel_id,
        posts.c.root_id,
        posts.c.original_id,
        posts.c.message,
        posts.c.type,
        posts.c.props,
        posts.c.hashtags,
        posts.c.file_ids,
        posts.c.pending_post_id,
        posts.c.has_reactions,
        posts.c.reply_count,
        posts.c.last_reply_at,
    ],
    select(
        bindparam("p_post_id", type_=String),
        channels.c.last_post_at,
        channels.c.last_post_at,
        _ZERO,
        _ZERO,
        false(),
        _USER,
        channels.c.id,
        bindparam("p_root_id", type_=String),
        _EMPTY,
        bindparam("p_message", type_=Text),
        bindparam("p_type", type_=String),
        bindparam("p_props", type_=JSON),
        _EMPTY,
        bindparam("p_file_ids", type_=JSON),
        bindparam("p_key", type_=String),
        false(),
        _ZERO,
        _ZERO,
    ).where(_THIS_CHANNEL),
)

# Posting marks the channel read for the author, as Mattermost does: up to the channel's counts
# after `BUMP_CHANNEL`, read by the statement (see `INSERT_POST`).
MARK_READ = (
    update(channel_members)
    .where(channel_members.c.channel_id == _CHANNEL, channel_members.c.user_id == _USER)
    .values(
        last_viewed_at=_channel_column(channels.c.last_post_at),
        msg_count=_channel_column(channels.c.total_msg_count),
        msg_count_root=_channel_column(channels.c.total_msg_count_root),
        mention_count=0,
        mention_count_root=0,
        urgent_mention_count=0,
        last_update_at=bindparam("p_update_at", type_=BigInteger),
    )
)
