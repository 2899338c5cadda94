"""Tables, as SQLAlchemy Core metadata. Column names follow Mattermost's JSON field names.

The Alembic migrations in `migrations/versions` create these; `tests/unit/test_schema.py` checks
that the migrated database and this metadata agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

ID = 26


def _id(name: str = "id", **kw: Any) -> Column[str]:
    return Column(name, String(ID), **kw)


def _ms(name: str) -> Column[int]:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


def _str(name: str, length: int = 64) -> Column[str]:
    return Column(name, String(length), nullable=False, server_default=text("''"))


def _bool(name: str) -> Column[bool]:
    return Column(name, Boolean, nullable=False, server_default=text("false"))


systems = Table(
    "systems",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    _id(primary_key=True),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("username", String(64), nullable=False, unique=True),
    Column("password", String(128), nullable=False, server_default=text("''")),
    _str("auth_service", 32),
    Column("auth_data", String(128), nullable=True),
    Column("email", String(128), nullable=False, unique=True),
    _bool("email_verified"),
    _str("nickname", 64),
    _str("first_name", 64),
    _str("last_name", 64),
    _str("position", 128),
    Column("roles", String(256), nullable=False, server_default=text("'system_user'")),
    Column("props", JSON, nullable=False),
    Column("notify_props", JSON, nullable=False),
    Column("timezone", JSON, nullable=False),
    _ms("last_password_update"),
    _ms("last_picture_update"),
    Column("failed_attempts", Integer, nullable=False, server_default=text("0")),
    Column("locale", String(5), nullable=False, server_default=text("'en'")),
    _bool("mfa_active"),
    _bool("is_bot"),
    _ms("last_activity_at"),
    _ms("last_login"),
    # Migration 0008: the base32 TOTP secret (set by `mfa/generate`, kept until MFA is turned
    # off) and the time steps of the codes already used, space-separated (no code twice).
    _str("mfa_secret", 128),
    _str("mfa_used_timestamps", 256),
)

sessions = Table(
    "sessions",
    metadata,
    _id(primary_key=True),
    Column("token", String(ID), nullable=False, unique=True),
    _ms("create_at"),
    _ms("expires_at"),
    _ms("last_activity_at"),
    _id("user_id", nullable=False, index=True),
    _str("device_id", 512),
    Column("roles", String(256), nullable=False, server_default=text("''")),
    _bool("is_oauth"),
    Column("csrf_token", String(ID), nullable=False),
    Column("props", JSON, nullable=False),
)

user_access_tokens = Table(
    "user_access_tokens",
    metadata,
    _id(primary_key=True),
    Column("token", String(ID), nullable=False, unique=True),
    _id("user_id", nullable=False, index=True),
    _str("description", 512),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _ms("create_at"),
)

bots = Table(
    "bots",
    metadata,
    _id("user_id", primary_key=True),
    _str("description", 1024),
    _id("owner_id", nullable=False),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
)

teams = Table(
    "teams",
    metadata,
    _id(primary_key=True),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("display_name", String(64), nullable=False),
    Column("name", String(64), nullable=False, unique=True),
    _str("description", 255),
    _str("email", 128),
    Column("type", String(1), nullable=False, server_default=text("'O'")),
    _str("company_name", 64),
    _str("allowed_domains", 1000),
    _str("invite_id", ID),
    _bool("allow_open_invite"),
    _ms("last_team_icon_update"),
)

team_members = Table(
    "team_members",
    metadata,
    _id("team_id", primary_key=True),
    _id("user_id", primary_key=True, index=True),
    Column("roles", String(256), nullable=False, server_default=text("''")),
    _ms("delete_at"),
    Column("scheme_user", Boolean, nullable=False, server_default=text("true")),
    _bool("scheme_admin"),
    _bool("scheme_guest"),
    _ms("create_at"),
)

channels = Table(
    "channels",
    metadata,
    _id(primary_key=True),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("team_id", String(ID), nullable=False, server_default=text("''")),
    Column("type", String(1), nullable=False),
    _str("display_name", 64),
    Column("name", String(64), nullable=False),
    _str("header", 1024),
    _str("purpose", 250),
    _ms("last_post_at"),
    _ms("last_root_post_at"),
    _ms("total_msg_count"),
    _ms("total_msg_count_root"),
    _ms("extra_update_at"),
    _str("creator_id", ID),
    Column("props", JSON, nullable=True),
    # Realtime delivery: a per-channel event sequence assigned in the committing transaction, and
    # a membership version bumped with every membership change (DESIGN §4 invariants 6 and 7).
    _ms("event_seq"),
    _ms("member_version"),
    UniqueConstraint("team_id", "name", name="uq_channels_team_name"),
)

channel_members = Table(
    "channel_members",
    metadata,
    _id("channel_id", primary_key=True),
    _id("user_id", primary_key=True, index=True),
    Column("roles", String(256), nullable=False, server_default=text("''")),
    _ms("last_viewed_at"),
    _ms("msg_count"),
    _ms("mention_count"),
    _ms("mention_count_root"),
    _ms("urgent_mention_count"),
    _ms("msg_count_root"),
    Column("notify_props", JSON, nullable=False),
    _ms("last_update_at"),
    Column("scheme_user", Boolean, nullable=False, server_default=text("true")),
    _bool("scheme_admin"),
    _bool("scheme_guest"),
)

posts = Table(
    "posts",
    metadata,
    _id(primary_key=True),
    _ms("create_at"),
    _ms("update_at"),
    _ms("edit_at"),
    _ms("delete_at"),
    _bool("is_pinned"),
    _id("user_id", nullable=False),
    _id("channel_id", nullable=False),
    Column("root_id", String(ID), nullable=False, server_default=text("''")),
    Column("original_id", String(ID), nullable=False, server_default=text("''")),
    Column("message", Text, nullable=False, server_default=text("''")),
    _str("type", 64),
    Column("props", JSON, nullable=False),
    _str("hashtags", 1000),
    Column("file_ids", JSON, nullable=False),
    _str("pending_post_id", ID),
    _bool("has_reactions"),
    _ms("reply_count"),
    _ms("last_reply_at"),
    Index("ix_posts_channel_create", "channel_id", "create_at"),
    Index("ix_posts_channel_update", "channel_id", "update_at"),
    Index("ix_posts_root_create", "root_id", "create_at"),
    Index(
        "uq_posts_user_pending",
        "user_id",
        "pending_post_id",
        unique=True,
        sqlite_where=text("pending_post_id <> ''"),
        postgresql_where=text("pending_post_id <> ''"),
    ),
)

reactions = Table(
    "reactions",
    metadata,
    _id("user_id", primary_key=True),
    _id("post_id", primary_key=True, index=True),
    Column("emoji_name", String(64), primary_key=True),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("channel_id", String(ID), nullable=False, server_default=text("''")),
)

file_infos = Table(
    "file_infos",
    metadata,
    _id(primary_key=True),
    _id("creator_id", nullable=False),
    Column("post_id", String(ID), nullable=False, server_default=text("''"), index=True),
    _id("channel_id", nullable=False),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("path", String(512), nullable=False),
    _str("thumbnail_path", 512),
    _str("preview_path", 512),
    Column("name", String(256), nullable=False),
    _str("extension", 64),
    Column("size", BigInteger, nullable=False),
    _str("mime_type", 256),
    Column("width", Integer, nullable=False, server_default=text("0")),
    Column("height", Integer, nullable=False, server_default=text("0")),
    _bool("has_preview_image"),
    Column("mini_preview", Text, nullable=True),
)

statuses = Table(
    "statuses",
    metadata,
    _id("user_id", primary_key=True),
    Column("status", String(32), nullable=False),
    _bool("manual"),
    _ms("last_activity_at"),
    _ms("dnd_end_time"),
    _str("prev_status", 32),
)

# Cluster (migration 0002).

cluster_discovery = Table(
    "cluster_discovery",
    metadata,
    _id(primary_key=True),
    Column("type", String(64), nullable=False),
    Column("cluster_name", String(64), nullable=False),
    Column("hostname", String(512), nullable=False),
    Column("port", Integer, nullable=False),
    _ms("create_at"),
    _ms("last_ping_at"),
    # hubbub additions, shown by /api/v4/cluster/status
    _str("version", 64),
    _str("schema_version", 64),
    _str("config_hash", 64),
    Column("props", JSON, nullable=False),
    UniqueConstraint("cluster_name", "hostname", "port", name="uq_cluster_discovery_node"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("token", BigInteger, nullable=False),  # fencing token: grows with every new holder
    _ms("expires_at"),
)

# Events committed with their change, published by the writing node right after commit and
# republished by any node's sweeper if that node died first (DESIGN §4 invariant 1).
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(ID), primary_key=True),  # the event id: publishing is idempotent by it
    _ms("create_at"),
    Column("channel_id", String(ID), nullable=False, server_default=text("''")),
    _ms("channel_seq"),
    Column("recipients", JSON, nullable=False),
    Column("body", Text, nullable=False),
    Column("meta", JSON, nullable=False),
    _ms("published_at"),
    Index("ix_outbox_pending", "published_at", "create_at"),
)

# The apps' own state (migration 0003): preferences, roles, sidebar categories.

preferences = Table(
    "preferences",
    metadata,
    _id("user_id", primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)

# Built-in roles are seeded from hubbub/services/role_catalog.py on first use. `permissions` is
# NULL while a role has never been patched: it then follows the catalog of the running version.
roles = Table(
    "roles",
    metadata,
    _id(primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    _str("display_name", 128),
    _str("description", 1024),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("permissions", Text, nullable=True),  # space-separated, as Mattermost stores them
    _bool("scheme_managed"),
    _bool("built_in"),
)

# Default categories have deterministic ids (`favorites_<user>_<team>`, ...), hence the length.
sidebar_categories = Table(
    "sidebar_categories",
    metadata,
    Column("id", String(128), primary_key=True),
    _id("user_id", nullable=False),
    _id("team_id", nullable=False),
    _ms("sort_order"),
    _str("sorting", 64),
    Column("type", String(32), nullable=False),
    _str("display_name", 64),
    _bool("muted"),
    _bool("collapsed"),
    Index("ix_sidebar_categories_user_team", "user_id", "team_id"),
)

# Channels placed in a category explicitly. A channel of the user's with no row here shows in
# the team's Channels (or Direct Messages) category, computed when the sidebar is read.
sidebar_channels = Table(
    "sidebar_channels",
    metadata,
    _id("channel_id", primary_key=True),
    _id("user_id", primary_key=True),
    Column("category_id", String(128), primary_key=True),
    _ms("sort_order"),
    Index("ix_sidebar_channels_category", "category_id"),
)

# Threads, drafts and custom emoji (migration 0006).

# Who follows which thread and what they have read of it. The thread itself (reply count, last
# reply, participants) is read from the posts table; only the per-user state lives here.
thread_memberships = Table(
    "thread_memberships",
    metadata,
    _id("post_id", primary_key=True),
    _id("user_id", primary_key=True),
    _bool("following"),
    _ms("last_viewed"),
    _ms("last_updated"),
    _ms("unread_mentions"),
    Index("ix_thread_memberships_user", "user_id", "following"),
)

# One draft per user, channel and thread root (`root_id` empty for the channel's message box).
drafts = Table(
    "drafts",
    metadata,
    _id("user_id", primary_key=True),
    _id("channel_id", primary_key=True),
    Column("root_id", String(ID), primary_key=True, server_default=text("''")),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    Column("message", Text, nullable=False, server_default=text("''")),
    Column("props", JSON, nullable=False),
    Column("file_ids", JSON, nullable=False),
    Column("priority", JSON, nullable=True),
)

# Custom emoji; the image lives in the file store at `emoji/{id}/image`. A name is unique among
# emoji not deleted (delete_at = 0), as in Mattermost.
emoji = Table(
    "emoji",
    metadata,
    _id(primary_key=True),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    _id("creator_id", nullable=False),
    Column("name", String(64), nullable=False),
    Index("uq_emoji_name_delete_at", "name", "delete_at", unique=True),
)

# Jobs (migration 0007): Mattermost's job rows (`data` holds strings only, as its `map[string]
# string`), plus the claim (`worker`, `attempts`: each claim adds one, and the worker's writes are
# fenced by it) and, for a job the scheduler created, its schedule and slot: the unique key makes
# a second job for one slot impossible, whichever leader tries.
jobs = Table(
    "jobs",
    metadata,
    _id(primary_key=True),
    Column("type", String(64), nullable=False),
    Column("priority", BigInteger, nullable=False, server_default=text("0")),
    _ms("create_at"),
    _ms("start_at"),
    _ms("last_activity_at"),
    Column("status", String(32), nullable=False),
    Column("progress", BigInteger, nullable=False, server_default=text("0")),
    Column("data", JSON, nullable=False),
    _str("worker", 64),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("schedule_key", String(64), nullable=True),
    Column("schedule_slot", BigInteger, nullable=True),
    Index("ix_jobs_status_type", "status", "type"),
    Index("ix_jobs_type_create", "type", "create_at"),
    UniqueConstraint("type", "schedule_key", "schedule_slot", name="uq_jobs_schedule_slot"),
)

# One-time tokens (migration 0008), as Mattermost's Tokens table: a password reset token with
# `extra` = the user id, valid for an hour from `create_at`.
tokens = Table(
    "tokens",
    metadata,
    Column("token", String(64), primary_key=True),
    _ms("create_at"),
    Column("type", String(64), nullable=False),
    Column("extra", Text, nullable=False),
)
