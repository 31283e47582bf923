"""One way to open an AMQP connection, so every service shows up by name and uses the same heartbeat."""

from __future__ import annotations

import os
import socket

import aio_pika
from aio_pika.abc import AbstractConnection
from yarl import URL

HEARTBEAT_SECONDS = 30
"""Short enough to notice a dead peer within a minute, long enough to survive a busy event loop."""

CONNECT_TIMEOUT_SECONDS = 10.0
RECONNECT_INTERVAL_SECONDS = 2.0


def connection_name(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


async def connect(
    amqp_url: str,
    service: str,
    *,
    robust: bool = True,
    timeout: float = CONNECT_TIMEOUT_SECONDS,
) -> AbstractConnection:
    """Open a connection named after `service` (visible in the management UI).

    `robust=True` gives aio-pika's RobustConnection, which reconnects in the background and reopens
    channels: right for publishers, which bound every publish with a timeout. The consumer runtime
    passes `robust=False` and owns recovery itself (see `shared.messaging.consumer`).
    A heartbeat given in the URL wins over the default. Raises on the first failed attempt.
    """
    url = URL(amqp_url)
    if "heartbeat" not in url.query:
        url = url.update_query(heartbeat=HEARTBEAT_SECONDS)
    properties = {"connection_name": connection_name(service)}
    if robust:
        return await aio_pika.connect_robust(
            url, client_properties=properties, timeout=timeout, reconnect_interval=RECONNECT_INTERVAL_SECONDS
        )
    return await aio_pika.connect(url, client_properties=properties, timeout=timeout)
