"""Prometheus metrics of the consumer runtime (default registry; the service exposes /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_HANDLED = Counter(
    "messaging_messages_handled_total",
    "Messages settled by the consumer runtime, by outcome (ack, retry, dead_letter, requeued)",
    ["entity", "queue", "outcome"],
)
BATCH_SIZE = Histogram(
    "messaging_batch_size",
    "Messages per micro-batch",
    ["entity", "queue"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
HANDLER_SECONDS = Histogram(
    "messaging_handler_duration_seconds",
    "Time the handler took for one micro-batch",
    ["entity", "queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_RESTARTS = Counter(
    "messaging_consumer_restarts_total",
    "Times the consumer re-established its connection after losing it",
    ["entity", "queue"],
)
