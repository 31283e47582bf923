"""Tables of the state store. Alembic migrations under shared/db/migrations mirror these."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class SyncStatus(enum.StrEnum):
    PENDING = "Pending"
    SUBMITTED = "Submitted"  # written through a feed file, not yet seen on Rithum
    PROCESSED = "Processed"
    FAILED = "Failed"
    FILTERED = "Filtered"
    SKIPPED = "Skipped"
    ABORTED = "Aborted"
    DELETED = "Deleted"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CONFIRMING = "confirming"  # enumeration done; waiting for Rithum to pick up the job's feed files
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SyncMode(enum.StrEnum):
    FULL = "full"
    DELTA = "delta"
    CUSTOM = "custom"
    SELECTED = "selected"  # the batch screen's Process / Process All: the job names its keys


class SiteConfig(Base):
    """One row (id=1): the knobs operators change at run time without a restart."""

    __tablename__ = "site_config"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    message_queue_threshold: Mapped[int] = mapped_column(Integer, default=100)
    batch_size: Mapped[int] = mapped_column(Integer, default=100)
    batch_window_ms: Mapped[int] = mapped_column(Integer, default=200)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    retry_delays: Mapped[dict[str, Any]] = mapped_column(JSONB, default=lambda: {"seconds": [5, 30, 300]})
    feed_threshold: Mapped[int] = mapped_column(Integer, default=500)
    query_map: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    rate_limits: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class SyncJob(Base):
    __tablename__ = "sync_jobs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    window_from: Mapped[datetime | None]
    window_to: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    source: Mapped[str] = mapped_column(String(32), default="api")
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    keys: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    found: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    filtered: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    submitted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    confirmed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    force: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")  # send unchanged records
    forced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recreated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    heartbeat_at: Mapped[datetime | None]  # the running process says it is alive; a stale job is taken over
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # where to resume, and the counts then
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    enumerated_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class SyncRecord(Base):
    __tablename__ = "sync_records"
    __table_args__ = (
        UniqueConstraint("entity", "acumatica_key", name="uq_sync_records_entity_key"),
        Index("ix_sync_records_entity_status", "entity", "status"),
        Index("ix_sync_records_entity_updated", "entity", "updated_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    acumatica_key: Mapped[str] = mapped_column(String(128))
    rithum_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=SyncStatus.PENDING)
    last_operation: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    source_modified_at: Mapped[datetime | None]
    job_id: Mapped[int | None] = mapped_column(ForeignKey("sync_jobs.id", ondelete="SET NULL"), index=True)
    last_message_id: Mapped[str | None] = mapped_column(String(64))
    # The feed file a Submitted record went out in, and what was last sent (a later update sends only changes).
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feed_uploads.id", ondelete="SET NULL"), index=True)
    sent: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class FeedUpload(Base):
    """A feed file handed to Rithum's FTP intake, whose rows the feed reconciler confirms later."""

    __tablename__ = "feed_uploads"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("sync_jobs.id", ondelete="SET NULL"), index=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # uploaded (its rows not saved yet) | submitted (the reconciler looks for its rows) | settled
    status: Mapped[str] = mapped_column(String(16), default="uploaded", index=True)
    uploaded_at: Mapped[datetime]
    confirm_by: Mapped[datetime]
    settled_at: Mapped[datetime | None]


class Watermark(Base):
    """Where the next Delta sync of an entity starts; moved only by a job that finished."""

    __tablename__ = "watermarks"
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    synced_until: Mapped[datetime]
    job_id: Mapped[int | None] = mapped_column(ForeignKey("sync_jobs.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Schedule(Base):
    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    entity: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    cron: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    last_job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Mapping(Base):
    """Value mappings between the systems: item class → classification, ship via ↔ carrier/class,
    warehouse → distribution centre. `options` carries structured targets (e.g. carrier and class)."""

    __tablename__ = "mappings"
    __table_args__ = (UniqueConstraint("kind", "source", name="uq_mappings_kind_source"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(256))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class RequestLogRow(Base):
    __tablename__ = "request_logs"
    __table_args__ = (
        Index("ix_request_logs_created", "created_at"),
        Index("ix_request_logs_system_created", "system", "created_at"),
        Index("ix_request_logs_entity_key", "entity", "record_key"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime]
    system: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Float)
    entity: Mapped[str | None] = mapped_column(String(32))
    record_key: Mapped[str | None] = mapped_column(String(128))
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    request_excerpt: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Base):
    """Messages that must be published together with a database write (transactional outbox)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Failed publishes this row is to blame for (refused, or the connection broke with it in flight).
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    available_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    set_aside_at: Mapped[datetime | None]  # the relay no longer tries it; listed by GET /api/v1/outbox
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ConsoleAudit(Base):
    """Every state-changing action taken in the ops console: who, what, when, on what, and its outcome."""

    __tablename__ = "console_audit"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
