"""feed uploads: Submitted records confirmed later by the feed reconciler; last sent product body

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_uploads",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirm_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["sync_jobs.id"], name=op.f("fk_feed_uploads_job_id_sync_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_uploads")),
    )
    op.create_index(op.f("ix_feed_uploads_job_id"), "feed_uploads", ["job_id"])
    op.create_index(op.f("ix_feed_uploads_status"), "feed_uploads", ["status"])
    op.add_column("sync_records", sa.Column("feed_id", sa.BigInteger(), nullable=True))
    op.add_column("sync_records", sa.Column("sent", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_foreign_key(
        op.f("fk_sync_records_feed_id_feed_uploads"),
        "sync_records",
        "feed_uploads",
        ["feed_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_sync_records_feed_id"), "sync_records", ["feed_id"])
    op.add_column("sync_jobs", sa.Column("submitted", sa.Integer(), server_default="0", nullable=False))
    op.add_column("sync_jobs", sa.Column("confirmed", sa.Integer(), server_default="0", nullable=False))
    op.add_column("sync_jobs", sa.Column("enumerated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("sync_jobs", "enumerated_at")
    op.drop_column("sync_jobs", "confirmed")
    op.drop_column("sync_jobs", "submitted")
    op.drop_index(op.f("ix_sync_records_feed_id"), table_name="sync_records")
    op.drop_constraint(op.f("fk_sync_records_feed_id_feed_uploads"), "sync_records", type_="foreignkey")
    op.drop_column("sync_records", "sent")
    op.drop_column("sync_records", "feed_id")
    op.drop_index(op.f("ix_feed_uploads_status"), table_name="feed_uploads")
    op.drop_index(op.f("ix_feed_uploads_job_id"), table_name="feed_uploads")
    op.drop_table("feed_uploads")
