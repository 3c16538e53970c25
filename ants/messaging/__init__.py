"""Messaging between queens and ants: one ``Transport`` interface, two implementations.

``RedisStreamsTransport`` (distributed) and ``InProcessTransport`` (standalone) share the same
semantics; see ``ants.messaging.base`` for the stream layout.
"""

from typing import Any

from ants.messaging.base import Delivery, Transport, TransportClosed
from ants.messaging.inprocess import InProcessTransport


def transport_from_url(url: str | None, prefix: str = "formicary", message_key: str = "") -> Transport:
    """``redis://...`` (or ``rediss://``/``unix://``) -> Redis Streams; empty or ``memory://`` -> in-process.

    ``message_key`` (a deployment secret or one ant's key, see ``ants.messaging.sealing``) turns
    on message encryption over Redis; in-process messages never leave the process and stay clear.
    """
    if not url or url.startswith("memory:"):
        return InProcessTransport()
    from ants.messaging.redis_streams import RedisStreamsTransport
    from ants.messaging.sealing import MessageSealer

    sealer = MessageSealer.from_setting(message_key) if message_key else None
    return RedisStreamsTransport(url, prefix=prefix, sealer=sealer)


def transport_from_settings(settings: Any, url: str | None = None, prefix: str | None = None) -> Transport:
    """The deployment's transport from a Django-like settings object (``REDIS_URL``,
    ``FORMICARY_REDIS_PREFIX``, ``FORMICARY_MESSAGE_KEY``): what the web, the queens and an ant
    build alike. An ant may name its own Redis and prefix (its config wins)."""
    return transport_from_url(
        url or settings.REDIS_URL,
        prefix=prefix or settings.FORMICARY_REDIS_PREFIX,
        message_key=settings.FORMICARY_MESSAGE_KEY,
    )


__all__ = [
    "Delivery",
    "InProcessTransport",
    "Transport",
    "TransportClosed",
    "transport_from_settings",
    "transport_from_url",
]
