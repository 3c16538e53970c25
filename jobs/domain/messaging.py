"""The process-wide transport: Redis Streams when ``REDIS_URL`` is set, else in-process (standalone,
where the web server, the queen and the local ant share one instance)."""

import threading

from django.conf import settings

from ants.messaging import Transport, transport_from_settings

_transport: Transport | None = None
_lock = threading.Lock()


def get_transport() -> Transport:
    global _transport
    with _lock:
        if _transport is None:
            _transport = transport_from_settings(settings)
        return _transport


def set_transport(transport: Transport) -> Transport:
    """Use ``transport`` as the process-wide one (tests, and hosts that build their own)."""
    global _transport
    with _lock:
        _transport = transport
    return transport


def reset_transport() -> None:
    """Close and forget the transport (tests and process shutdown)."""
    global _transport
    with _lock:
        if _transport is not None:
            _transport.close()
        _transport = None
