"""thread memberships, drafts and custom emoji (collapsed reply threads, synced drafts, emoji)

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-23 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ms(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "thread_memberships",
        sa.Column("post_id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("following", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _ms("last_viewed"),
        _ms("last_updated"),
        _ms("unread_mentions"),
        sa.PrimaryKeyConstraint("post_id", "user_id"),
    )
    with op.batch_alter_table("thread_memberships", schema=None) as batch_op:
        batch_op.create_index("ix_thread_memberships_user", ["user_id", "following"], unique=False)
    op.create_table(
        "drafts",
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("root_id", sa.String(length=26), server_default=sa.text("''"), nullable=False),
        _ms("create_at"),
        _ms("update_at"),
        _ms("delete_at"),
        sa.Column("message", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("props", sa.JSON(), nullable=False),
        sa.Column("file_ids", sa.JSON(), nullable=False),
        sa.Column("priority", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "channel_id", "root_id"),
    )
    op.create_table(
        "emoji",
        sa.Column("id", sa.String(length=26), nullable=False),
        _ms("create_at"),
        _ms("update_at"),
        _ms("delete_at"),
        sa.Column("creator_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("emoji", schema=None) as batch_op:
        batch_op.create_index("uq_emoji_name_delete_at", ["name", "delete_at"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("emoji", schema=None) as batch_op:
        batch_op.drop_index("uq_emoji_name_delete_at")
    op.drop_table("emoji")
    op.drop_table("drafts")
    with op.batch_alter_table("thread_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_memberships_user")
    op.drop_table("thread_memberships")
