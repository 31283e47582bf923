"""Connector settings, read from the environment (and a `.env` file).

The defaults point at the local sandboxes, so `make run` needs no configuration; production
overrides them. Secrets are `SecretStr` so they never print in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, PositiveFloat, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SANDBOX_ENV = "sandbox"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    # Infrastructure
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    amqp_prefix: str = Field("connector", description="Prefix of every exchange and queue name")
    rabbitmq_management_url: str = "http://127.0.0.1:15672"
    database_url: SecretStr = SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/connector")

    # Acumatica
    acumatica_url: str = "http://127.0.0.1:8101"
    acumatica_username: str = "admin"
    acumatica_password: SecretStr = SecretStr("admin")
    acumatica_tenant: str = "Company"
    acumatica_branch: str | None = None
    acumatica_endpoint: str = "Default/24.200.001"
    acumatica_auth: Literal["cookie", "oauth"] = "cookie"
    acumatica_client_id: str | None = None
    acumatica_client_secret: SecretStr | None = None
    acumatica_requests_per_minute: int = Field(
        600, ge=0, description="Stay under the license's API requests per minute (0: no client-side limit)"
    )
    acumatica_concurrency: int = Field(4, ge=1, description="Concurrent Acumatica API requests (license cores)")
    acumatica_page_size: int = Field(1000, ge=1, description="$top of each page when listing records")
    acumatica_timeout: float = Field(60.0, gt=0, description="Seconds one Acumatica API call may take")
    acumatica_max_attempts: int = Field(5, ge=1, description="Attempts per call on 429 / 5xx / transport errors")

    # Rithum
    rithum_api_url: str = "http://127.0.0.1:8102"
    rithum_application_id: str = "sandbox-app"
    rithum_shared_secret: SecretStr = SecretStr("sandbox-secret")
    rithum_refresh_token: SecretStr = SecretStr("sandbox-refresh")
    rithum_profile_id: int = 1
    rithum_ftp_url: SecretStr = SecretStr("ftp://sandbox:sandbox@127.0.0.1:2121")
    rithum_requests_per_minute: int = Field(2000, ge=1, description="Rithum's per-profile budget; $batch parts count")
    rithum_concurrency: int = Field(5, ge=1, description="Concurrent Rithum API requests per integration")
    rithum_feed_confirm_timeout: float = Field(
        7200.0,
        gt=0,
        description="Seconds a feed file's rows have to appear on Rithum before they are Failed",
    )
    rithum_feed_reconcile_seconds: float = Field(
        60.0, gt=0, description="How often submitted feed rows are looked for on Rithum"
    )
    rithum_feed_file_rows: int = Field(
        25_000, ge=1, description="A job sends its feed rows in files of this many; each file is a checkpoint"
    )
    job_heartbeat_seconds: float = Field(10.0, gt=0, description="How often a running job says it is alive")
    job_stale_seconds: float = Field(
        60.0, gt=0, description="A running job silent this long is taken over by another process (it resumes)"
    )

    # Ingress
    webhook_secret: SecretStr = SecretStr("sandbox-webhook-secret")
    webhook_header: str = "Authorization"
    api_token: SecretStr | None = None
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8000
    webhook_max_bytes: int = 1_000_000
    webhook_max_records: int = Field(1000, ge=1, description="Rows each of Inserted and Deleted may hold (else 413)")
    api_max_bytes: int = Field(2_000_000, ge=1, description="Largest request body under /api/v1 (else 413)")
    ingress_limit_concurrency: int = Field(
        1000, ge=1, description="Open connections or requests in progress before uvicorn answers 503"
    )
    ingress_keep_alive_seconds: int = Field(5, ge=1, description="An idle keep-alive connection is closed after this")
    ingress_header_timeout_seconds: float = Field(10.0, gt=0, description="Time a client has to send request headers")
    ingress_body_timeout_seconds: float = Field(30.0, gt=0, description="Time a client has to send a request body")
    ingress_max_header_bytes: int = Field(65_536, ge=1024, description="Largest request line plus headers (else 431)")

    # Scheduler
    scheduler_tick_seconds: float = Field(1.0, gt=0, description="How often the leader looks for due schedules")
    scheduler_standby_seconds: float = Field(
        3.0, gt=0, description="How often a standby scheduler tries to become the leader"
    )

    # Reliability
    outage_retry_delays: list[PositiveFloat] = Field(
        [60, 300, 900, 1800, 3600],
        min_length=1,
        description="Seconds between retries of a record whose target is down (the last repeats); no attempt is spent",
    )
    outage_max_hours: float = Field(24.0, gt=0, description="How long a record waits out a target outage, then the DLQ")
    circuit_failures: int = Field(5, ge=1, description="Consecutive failures (transport, 5xx) that open a circuit")
    circuit_window_seconds: float = Field(30.0, gt=0, description="...when they fall within this many seconds")
    circuit_open_seconds: float = Field(30.0, gt=0, description="First cool-down of an open circuit (doubles)")
    circuit_open_max_seconds: float = Field(300.0, gt=0, description="Longest cool-down of an open circuit")
    metrics_host: str = Field(
        "127.0.0.1", description="Where consumers and the scheduler serve /metrics and /healthz (--metrics-port)"
    )

    # Operations
    connector_env: str = Field(
        "production", description=f"'{SANDBOX_ENV}' (what `make run` sets) is the only one that runs on sandbox secrets"
    )
    log_level: str = "INFO"
    request_log_retention_days: int = 14
    request_log_excerpt_chars: int = 2000

    @property
    def database_url_plain(self) -> str:
        return self.database_url.get_secret_value()

    @property
    def amqp_url_plain(self) -> str:
        return self.amqp_url.get_secret_value()

    def secret_values(self) -> list[str]:
        """Every configured secret, so log redaction can blank them wherever they appear."""
        values = [
            self.acumatica_password,
            self.acumatica_client_secret,
            self.rithum_shared_secret,
            self.rithum_refresh_token,
            self.webhook_secret,
            self.api_token,
        ]
        out = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        ftp_password = urlsplit(self.rithum_ftp_url.get_secret_value()).password
        if ftp_password:
            out.append(ftp_password)
        return out


@lru_cache
def get_settings() -> Settings:
    return Settings()


def sandbox_credentials(settings: Settings) -> list[str]:
    """The settings (as environment variables) that still hold a sandbox credential: a default of this class,
    or RabbitMQ's `guest` account on a broker that is not on this machine."""
    found = [
        name.upper()
        for name in ("webhook_secret", "acumatica_password", "rithum_shared_secret", "rithum_refresh_token")
        if getattr(settings, name) == Settings.model_fields[name].default
    ]
    default_ftp = urlsplit(Settings.model_fields["rithum_ftp_url"].default.get_secret_value())
    if urlsplit(settings.rithum_ftp_url.get_secret_value()).password == default_ftp.password:
        found.append("RITHUM_FTP_URL (its password)")
    amqp = urlsplit(settings.amqp_url_plain)
    if "guest" in (amqp.username, amqp.password) and amqp.hostname not in LOCAL_HOSTS:
        found.append("AMQP_URL (the guest account, on a broker that is not local)")
    return found


def refuse_sandbox_credentials(settings: Settings) -> None:
    """Every service calls this at start (not Settings() itself, so tests that build settings are unaffected):
    the defaults are the sandboxes' published credentials, so outside CONNECTOR_ENV=sandbox a forgotten
    setting must stop the process rather than run a production connector on a known secret."""
    if settings.connector_env == SANDBOX_ENV:
        return
    found = sandbox_credentials(settings)
    if found:
        raise SystemExit(
            f"refusing to start with sandbox credentials (CONNECTOR_ENV={settings.connector_env!r}); "
            f"set {', '.join(found)}, or CONNECTOR_ENV={SANDBOX_ENV} to run against the sandboxes"
        )
