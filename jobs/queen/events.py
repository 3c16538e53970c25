"""Lifecycle events: sent after the transaction commits, to the channel layer (browsers) and to
in-process listeners (the standalone queen wakes at once when a request is submitted).

The channel layer delivers at most once: events are for live display, never the source of truth.
"""

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)

_listeners: list[Callable[[str, dict[str, Any]], None]] = []
_lock = threading.Lock()


def subscribe(listener: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
    """Call ``listener(kind, payload)`` for every event in this process; returns an unsubscribe."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def _deliver(kind: str, payload: dict[str, Any]) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(kind, payload)
        except Exception:  # a broken listener must not break the state change that emitted
            log.exception("event listener failed for %s", kind)
    _to_channel_layer(kind, payload)


def _to_channel_layer(kind: str, payload: dict[str, Any]) -> None:
    request_id = payload.get("job_request_id")
    if request_id is None:
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(f"job-{request_id}", {"type": "job.event", "kind": kind, **payload})
    except Exception:  # live display only: never fail the caller
        log.debug("channel layer send failed for %s", kind, exc_info=True)


def emit(kind: str, payload: dict[str, Any]) -> None:
    """Deliver ``kind`` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: _deliver(kind, payload))


def request_submitted(request: Any) -> None:
    emit(
        "request_submitted",
        {
            "job_request_id": request.pk,
            "job_type": request.job_type,
            "organization_id": request.organization_id,
        },
    )
