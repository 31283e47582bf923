"""The scheduler process with `--metrics-port` serves /healthz and /metrics."""

from __future__ import annotations

import httpx

from shared.settings import Settings
from tests.support.processes import free_port, service


async def test_the_scheduler_serves_health_and_metrics(settings: Settings, clean_db) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": settings.database_url_plain, "AMQP_PREFIX": settings.amqp_prefix}
    with service(["services.scheduler", "--metrics-port", str(port)], f"{url}/healthz", env=env):  # 503 until up
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert (health.status_code, health.json()) == (
            200,
            {"status": "ok", "checks": {"database": True, "broker": True}},
        )
        metrics = httpx.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        assert "process_cpu_seconds_total" in metrics.text
