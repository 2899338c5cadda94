"""jobs: Mattermost's job table plus claims and schedule slots

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("create_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("start_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_activity_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("progress", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("worker", sa.String(length=64), server_default=sa.text("('')"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("schedule_key", sa.String(length=64), nullable=True),
        sa.Column("schedule_slot", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("type", "schedule_key", "schedule_slot", name="uq_jobs_schedule_slot"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_status_type", ["status", "type"], unique=False)
        batch_op.create_index("ix_jobs_type_create", ["type", "create_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_type_create")
        batch_op.drop_index("ix_jobs_status_type")
    op.drop_table("jobs")
