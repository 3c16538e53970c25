"""Lifecycle events: sent after the transaction commits, to the channel layer (browsers) and to
in-process listeners (the standalone queen wakes at once when a request is submitted).

The channel layer delivers at most once: events are for live display, never the source of truth.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction

from jobs import fastsql

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
        # not sent to the channel layer: no page can watch a request before it exists, and a
        # page opened since shows the new request from its snapshot
        _waker.wake()
    elif payload.get("job_request_id") is not None:
        _sender.put(kind, payload)


def _wake_queens() -> None:
    """A request submitted in this process (web server, API, cron) wakes the queens of other
    processes at once instead of after their next blocking read times out."""
    try:
        from jobs.domain.messaging import get_transport

        get_transport().wake_queens()
    except Exception:  # the queens find the request on their next pass anyway
        log.debug("waking the queens failed", exc_info=True)


class _QueenWaker:
    """Wakes the queens from a background thread, so a submit only raises a flag.

    Every wake is a Redis XADD that each queen also reads and acks: submits close together
    share one. The first submit after a quiet spell wakes the queens at once; submits within
    ``GAP_SECS`` of a wake are covered by one more wake right after the gap, so every submit
    is followed by a wake sent after its commit.
    """

    GAP_SECS = 0.005
    # An idle waker's thread gets the interpreter lock at once: the submit waits (at most this
    # long) until it took the wake, instead of making it wait for the submit's next I/O (0.75 ms
    # of submit-to-start, measured). It never waits for the XADD itself, nor for a wake in flight.
    HANDOFF_SECS = 0.002

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = False
        self._busy = False  # a wake, or the gap after it, in progress
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        with self._cond:
            self._pending = True
            idle = not self._busy
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="queen-waker", daemon=True)
                self._thread.start()
            self._cond.notify_all()  # all: a caller of settle() may be waiting too
            if idle:
                self._cond.wait_for(lambda: not self._pending, self.HANDOFF_SECS)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending)
                self._pending, self._busy = False, True
                self._cond.notify_all()  # a submit waiting for the handoff goes on
            try:
                _wake_queens()
                time.sleep(self.GAP_SECS)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def settle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)


class _ChannelSender:
    """Sends events to the channel layer from one background thread with its own event loop.

    The state change that emitted never waits for the channel layer (a send through
    ``async_to_sync`` costs a new event loop, and with Redis a new connection, per event);
    events queued close together go out together, one message per job request.
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
    # one message per job request and batch: a group_send costs several Redis round trips
    # whatever it carries, and one request's events come in bursts (task and job states)
    by_request: dict[Any, list[dict[str, Any]]] = {}
    for kind, payload in batch:
        by_request.setdefault(payload["job_request_id"], []).append({"kind": kind, **payload})
    watched = await watched_groups(layer, [f"job-{request_id}" for request_id in by_request])
    for request_id, job_events in by_request.items():
        if f"job-{request_id}" not in watched:
            continue
        try:
            await layer.group_send(f"job-{request_id}", {"type": "job.events", "events": job_events})
        except Exception:  # live display only: never fail
            log.debug("channel layer send failed for request %s", request_id, exc_info=True)


async def watched_groups(layer: Any, groups: list[str]) -> set[str]:
    """The groups a page is subscribed to. With Redis, a group_send to a group nobody joined
    still costs two round trips (about a fifth of a busy queen's CPU went there): one pipelined
    EXISTS per batch and shard skips them. In memory (standalone), each group_send first sweeps
    every channel and group for expired entries, in the one interpreter the queen and the ant
    share: its groups are looked up instead. Other layers are asked nothing."""
    from channels.layers import InMemoryChannelLayer

    if isinstance(layer, InMemoryChannelLayer):
        return {group for group in groups if layer.groups.get(group)}
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover - channels_redis is a dependency
        return set(groups)
    if not isinstance(layer, RedisChannelLayer) or fastsql.group_key(layer, "") is None:
        return set(groups)
    by_shard: dict[int, list[str]] = {}
    for group in groups:
        by_shard.setdefault(layer.consistent_hash(group), []).append(group)
    watched: set[str] = set()
    for shard, names in by_shard.items():
        try:
            pipe = layer.connection(shard).pipeline(transaction=False)
            for name in names:
                pipe.exists(fastsql.group_key(layer, name))  # the sorted set group_add writes to
            found = await pipe.execute()
        except Exception:  # unknown: send as before
            log.debug("checking channel groups failed", exc_info=True)
            watched.update(names)
            continue
        watched.update(name for name, n in zip(names, found, strict=True) if n)
    return watched


_sender = _ChannelSender()
_waker = _QueenWaker()


def flush(timeout: float = 5.0) -> bool:
    """Wait until the events emitted so far reached the channel layer."""
    return _sender.flush(timeout)


@contextmanager
def together() -> Iterator[None]:
    """Events delivered inside the block go to the channel layer together, after it: the sender
    takes its queue only when the block ends (tests of how a batch is sent)."""
    with _sender._cond:
        yield


def wakes_settled(timeout: float = 5.0) -> bool:
    """Wait until no wake of the queens is pending or in flight, the gap after the last one
    included (tests counting wakes)."""
    return _waker.settle(timeout)


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
