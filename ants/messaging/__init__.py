"""Messaging between queens and ants: one ``Transport`` interface, two implementations.

``RedisStreamsTransport`` (distributed) and ``InProcessTransport`` (standalone) share the same
semantics; see ``ants.messaging.base`` for the stream layout.
"""

from ants.messaging.base import Delivery, Transport, TransportClosed
from ants.messaging.inprocess import InProcessTransport


def transport_from_url(url: str | None, prefix: str = "formicary") -> Transport:
    """``redis://...`` (or ``rediss://``/``unix://``) -> Redis Streams; empty or ``memory://`` -> in-process."""
    if not url or url.startswith("memory:"):
        return InProcessTransport()
    from ants.messaging.redis_streams import RedisStreamsTransport

    return RedisStreamsTransport(url, prefix=prefix)


__all__ = ["Delivery", "InProcessTransport", "Transport", "TransportClosed", "transport_from_url"]
