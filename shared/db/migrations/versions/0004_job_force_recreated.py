"""jobs: forced syncs, and counts of records forced and re-created on the target

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_jobs", sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("sync_jobs", sa.Column("forced", sa.Integer(), server_default="0", nullable=False))
    op.add_column("sync_jobs", sa.Column("recreated", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("sync_jobs", "recreated")
    op.drop_column("sync_jobs", "forced")
    op.drop_column("sync_jobs", "force")
