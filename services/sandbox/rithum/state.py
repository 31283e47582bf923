"""Everything the sandbox remembers: credentials, tokens, limits, faults, counters, catalogue and orders."""

from __future__ import annotations

import math
import random
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .catalog import Catalog
from .orders import OrderBook


@dataclass(frozen=True)
class Credentials:
    application_id: str = "sandbox-app"
    shared_secret: str = "sandbox-secret"
    refresh_token: str = "sandbox-refresh"
    profile_id: int = 1
    ftp_user: str = "sandbox"
    ftp_password: str = "sandbox"


@dataclass
class Config:
    """Knobs an admin call may turn at run time."""

    token_ttl: float = 3600.0
    requests_per_minute: int = 2000
    concurrency: int = 5
    feed_delay: float = 1800.0  # Rithum picks feed files up "within one hour"
    feed_results: bool = False  # debugging aid: write /Inventory/Results/<name>.results.txt (Rithum does not)
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Faults:
    error_rate: float = 0.0  # share of API calls answered 500
    latency_ms: int = 0  # added to every API call
    burst_429: int = 0  # the next N API calls answer 429
    retry_after: int = 1  # seconds announced by burst 429s
    outage: bool = False  # every API and token call answers 503


@dataclass
class Token:
    profile_id: int
    application_id: str
    expires_at: float


class Tokens:
    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def issue(self, profile_id: int, application_id: str, ttl: float) -> str:
        now = time.monotonic()
        self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
        value = secrets.token_urlsafe(32)
        self._tokens[value] = Token(profile_id, application_id, now + ttl)
        return value

    def check(self, value: str | None) -> Token | None:
        token = self._tokens.get(value or "")
        return token if token is not None and token.expires_at > time.monotonic() else None

    def expire_all(self) -> int:
        count = len(self._tokens)
        self._tokens.clear()
        return count


class Limiter:
    """Per-profile leaky bucket (N per minute, bursts up to N) and a count of calls in flight.

    A leaky bucket rather than a fixed window: a client pacing itself with a leaky bucket of the same
    size (aiolimiter) then never sees a 429, while one that ignores the budget does.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._level: dict[int, tuple[float, float]] = {}  # profile -> (level, at)
        self.in_flight: Counter[int] = Counter()

    def take(self, profile_id: int) -> float | None:
        """Count one call; None if allowed, else seconds until one would be."""
        capacity = self.config.requests_per_minute
        rate = capacity / 60.0
        now = time.monotonic()
        level, at = self._level.get(profile_id, (0.0, now))
        level = max(0.0, level - (now - at) * rate)
        if level + 1 > capacity:
            self._level[profile_id] = (level, now)
            return (level + 1 - capacity) / rate
        self._level[profile_id] = (level + 1, now)
        return None

    def enter(self, profile_id: int) -> bool:
        if self.in_flight[profile_id] >= self.config.concurrency:
            return False
        self.in_flight[profile_id] += 1
        return True

    def leave(self, profile_id: int) -> None:
        self.in_flight[profile_id] -= 1


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class Stats:
    """Counters benchmarks read to compute API calls per record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.http_requests = 0  # HTTP requests to /oauth2 and /v1 ($batch counts once)
        self.api_calls = 0  # calls counted against the limits: /v1 requests plus each $batch part
        self.by_kind: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.ftp: Counter[str] = Counter()
        self.webhooks: Counter[str] = Counter()

    def snapshot(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "api_calls": self.api_calls,
            "by_kind": dict(sorted(self.by_kind.items())),
            "by_status": dict(sorted(self.by_status.items())),
            "ftp": dict(sorted(self.ftp.items())),
            "webhooks": dict(sorted(self.webhooks.items())),
        }


class Sandbox:
    def __init__(self, credentials: Credentials, config: Config, seed: int = 0) -> None:
        self.credentials = credentials
        self.initial_config = Config(**asdict(config))
        self.seed = seed
        self.tokens = Tokens()
        self.stats = Stats()
        self.catalog = Catalog(credentials.profile_id)
        self.orders = OrderBook(credentials.profile_id)
        self.feeds: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        """Back to the state at start-up (minus seeded orders): empty, default config, no faults."""
        self.config = Config(**asdict(self.initial_config))
        self.faults = Faults()
        self.rng = random.Random(self.seed)  # injected errors repeat identically after a reset
        self.limiter = Limiter(self.config)
        self.tokens.expire_all()
        self.stats.reset()
        self.catalog.reset()
        self.orders.reset()
        self.feeds.clear()
