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
    if kind == "request_submitted":
        _wake_queens()
    if payload.get("job_request_id") is not None:
        _sender.put(kind, payload)


def _wake_queens() -> None:
    """A request submitted in this process (web server, API, cron) wakes the queens of other
    processes at once instead of after their next blocking read times out."""
    try:
        from jobs.queen.messaging import get_transport

        get_transport().wake_queens()
    except Exception:  # the queens find the request on their next pass anyway
        log.debug("waking the queens failed", exc_info=True)


class _ChannelSender:
    """Sends events to the channel layer from one background thread with its own event loop.

    The state change that emitted never waits for the channel layer (a send through
    ``async_to_sync`` costs a new event loop, and with Redis a new connection, per event);
    events queued close together go out back to back on one connection.
    """

    MAX_QUEUED = 10_000  # live display only: beyond this, events are dropped

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._thread: threading.Thread | None = None
        self._busy = False

    def put(self, kind: str, payload: dict[str, Any]) -> None:
        with self._cond:
            if len(self._queue) >= self.MAX_QUEUED:
                return
            self._queue.append((kind, payload))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="channel-events", daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was handed to the channel layer (tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _run(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._queue))
                    batch, self._queue = self._queue, []
                    self._busy = True
                try:
                    loop.run_until_complete(_send_all(batch))
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        finally:  # pragma: no cover - a daemon thread ends with the process
            loop.close()


async def _send_all(batch: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
    except Exception:
        log.debug("no channel layer", exc_info=True)
        return
    if layer is None:
        return
    for kind, payload in batch:
        try:
            await layer.group_send(
                f"job-{payload['job_request_id']}", {"type": "job.event", "kind": kind, **payload}
            )
        except Exception:  # live display only: never fail
            log.debug("channel layer send failed for %s", kind, exc_info=True)


_sender = _ChannelSender()


def flush(timeout: float = 5.0) -> bool:
    """Wait until the events emitted so far reached the channel layer."""
    return _sender.flush(timeout)


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
