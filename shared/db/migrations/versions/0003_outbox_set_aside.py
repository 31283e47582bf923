"""outbox rows the relay sets aside (refused by the broker, or breaking its connection) instead of retrying forever

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
    op.add_column("outbox", sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "set_aside_at")
    op.drop_column("outbox", "failures")
