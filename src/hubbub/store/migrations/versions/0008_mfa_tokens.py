"""mfa and tokens: the users' TOTP secret and used time steps; one-time tokens (password reset)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "mfa_secret", sa.String(length=128), server_default=sa.text("('')"), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                "mfa_used_timestamps",
                sa.String(length=256),
                server_default=sa.text("('')"),
                nullable=False,
            )
        )
    op.create_table(
        "tokens",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("create_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("extra", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("mfa_used_timestamps")
        batch_op.drop_column("mfa_secret")
