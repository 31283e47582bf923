"""Knobs the admin API turns at run time: license limits, sessions, injected faults, timings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # License (SM604000): 0 requests/minute means unlimited; cores = concurrent requests
    requests_per_minute: int = Field(0, ge=0)
    window_seconds: float = Field(60.0, gt=0, description="length of the per-minute window (shorten for tests)")
    concurrent_requests: int = Field(16, ge=1)
    queue_limit: int = Field(20, ge=0, description="requests allowed to wait for a core before 429")
    queue_timeout: float = Field(600.0, gt=0, description="seconds a queued request may wait before 429")
    max_sessions: int = Field(100, ge=1, description="Maximum Number of Web Services API Users")
    session_ttl: float = Field(1200.0, gt=0, description="idle seconds before a session expires")
    # Faults
    error_rate: float = Field(0.0, ge=0, le=1, description="share of API requests answered 500")
    latency_ms: int = Field(0, ge=0)
    burst_429: int = Field(0, ge=0, description="the next N API requests answer 429")
    retry_after: int = Field(1, ge=0, description="Retry-After seconds sent with 429")
    # Timings
    action_delay_ms: int = Field(200, ge=0, description="how long an action runs before polling sees 204")
    push_retry_delay_ms: int = Field(500, ge=0, description="first retry delay of a push delivery (doubles)")
