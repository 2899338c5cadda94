"""preferences, roles and sidebar categories (the official apps' start-up needs)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "category", "name"),
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "display_name", sa.String(length=128), server_default=sa.text("''"), nullable=False
        ),
        sa.Column(
            "description", sa.String(length=1024), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("create_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("update_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("delete_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("permissions", sa.Text(), nullable=True),
        sa.Column("scheme_managed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("built_in", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "sidebar_categories",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("team_id", sa.String(length=26), nullable=False),
        sa.Column("sort_order", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("sorting", sa.String(length=64), server_default=sa.text("''"), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column(
            "display_name", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("muted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("collapsed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sidebar_categories", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sidebar_categories_user_team", ["user_id", "team_id"], unique=False
        )
    op.create_table(
        "sidebar_channels",
        sa.Column("channel_id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("category_id", sa.String(length=128), nullable=False),
        sa.Column("sort_order", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "user_id", "category_id"),
    )
    with op.batch_alter_table("sidebar_channels", schema=None) as batch_op:
        batch_op.create_index("ix_sidebar_channels_category", ["category_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sidebar_channels", schema=None) as batch_op:
        batch_op.drop_index("ix_sidebar_channels_category")
    op.drop_table("sidebar_channels")
    with op.batch_alter_table("sidebar_categories", schema=None) as batch_op:
        batch_op.drop_index("ix_sidebar_categories_user_team")
    op.drop_table("sidebar_categories")
    op.drop_table("roles")
    op.drop_table("preferences")
