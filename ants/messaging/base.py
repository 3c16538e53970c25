"""The messaging interface shared by queens and ants.

Streams (names for the Redis transport, ``{prefix}`` defaults to ``formicary``):

- ``{prefix}:ant:{ant_id}:tasks``: EXECUTE requests for one ant, consumer group ``ants``.
- ``{prefix}:ant:{ant_id}:control``: every other action (CANCEL, PING, ...), same group. It is a
  separate stream so an ant at full capacity still receives CANCEL while leaving EXECUTE
  requests unread (``read_tasks(..., count=0)`` reads only the control stream).
- ``{prefix}:responses``: every TaskResponse, consumer group ``queens``.
- ``{prefix}:registrations``: heartbeats, read without a group (fan-out: every reader sees
  every heartbeat), capped; ``{prefix}:ants`` is a hash ant_id -> latest registration.
- ``{prefix}:logs:{task_execution_id}``: log lines of one task execution, capped, expiring.
- ``{prefix}:logs``: every log line, consumer group ``log-writers`` (the queen persists them).

Semantics common to every transport:

- ``block_ms <= 0`` means "do not block"; otherwise a read waits up to ``block_ms`` for data.
- Entries read through a consumer group stay pending until acked; ``claim_*`` hands pending
  entries idle for ``min_idle_ms`` to another consumer (a dead consumer's work is not lost).
- Acked entries are deleted: each group stream has a single group, so an acked entry is done.
- A malformed entry is logged, acked and skipped; it never breaks a reader.
- ``wake()`` makes every blocked read of this transport return (possibly empty) now.
- Delivery ids are opaque strings; control-stream deliveries carry a ``ctl/`` prefix because
  ids of two streams can be equal, and ``ack_task`` must know which stream to ack.
- Registrations fan out through a plain stream read with XREAD from a per-transport cursor
  (not pub/sub): a queen that blinks for a moment still gets every heartbeat, and the capped
  stream costs nothing to keep. ``ant_registrations()`` filters the hash by ``created_at`` (the
  ant's clock) since Redis 7.0 has no per-field hash expiry.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ants.protocol import (
    ACTION_EXECUTE,
    STATUS_EXECUTING,
    AntRegistration,
    LogLine,
    ProtocolError,
    TaskRequest,
    TaskResponse,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

TASKS_GROUP = "ants"
RESPONSES_GROUP = "queens"
LOGS_GROUP = "log-writers"

# An ant is considered gone when silent this long (reference: 15 s).
DEFAULT_ANT_TTL_SECS = 15.0
# Per-task log streams keep this many lines and expire this long after the last line.
LOG_STREAM_MAXLEN = 10_000
LOG_STREAM_TTL_SECS = 24 * 3600
# ... and this long after the task's end: followers of a running task read the stream, anyone
# later reads the stored log (a day of every task's stream was most of a soak's memory growth)
LOG_STREAM_TTL_AFTER_END_SECS = 300


def ended_tasks(responses: Sequence[TaskResponse]) -> set[int]:
    """The task executions whose final answer is among ``responses``."""
    return {
        r.task_execution_id for r in responses if r.action == ACTION_EXECUTE and r.status != STATUS_EXECUTING
    }


# The shared fan-in streams are capped generously (approximate trimming).
SHARED_LOG_MAXLEN = 1_000_000
REGISTRATIONS_MAXLEN = 10_000
# Delivery ids of control-stream entries carry this prefix: ids of two streams can collide.
CONTROL_ID_PREFIX = "ctl/"
CONTROL_BATCH = 100


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """One message read through a consumer group; ack it with ``id`` once handled."""

    id: str
    message: T


class TransportClosed(RuntimeError):
    """The transport was closed."""


class Transport(abc.ABC):
    """Queen <-> ant messaging. Implementations are thread-safe."""

    # how many ``wake_queens`` entries this transport has read: a queen schedules at once when it
    # changes (a request was submitted in another process)
    wakes_read = 0

    # -- task requests (queen -> one ant) ----------------------------------------------------
    @abc.abstractmethod
    def send_task(self, ant_id: str, req: TaskRequest) -> None:
        """Queue ``req`` for ``ant_id`` (EXECUTE on the tasks stream, other actions on control)."""

    def send_tasks(self, tasks: Iterable[tuple[str, TaskRequest]]) -> None:
        """``send_task`` for each ``(ant_id, request)``, in order (one round trip where possible)."""
        for ant_id, req in tasks:
            self.send_task(ant_id, req)

    @abc.abstractmethod
    def read_tasks(
        self, ant_id: str, consumer: str, block_ms: int, count: int
    ) -> list[Delivery[TaskRequest]]:
        """Read new requests for ``ant_id``: control entries first, then up to ``count`` EXECUTEs.

        ``count <= 0`` reads only the control stream (an ant at full capacity).
        """

    @abc.abstractmethod
    def ack_task(self, ant_id: str, delivery_id: str) -> None:
        """Mark a request handled (it is then deleted)."""

    @abc.abstractmethod
    def claim_stale_tasks(self, ant_id: str, consumer: str, min_idle_ms: int) -> list[Delivery[TaskRequest]]:
        """Take over requests of ``ant_id`` pending (unacked) longer than ``min_idle_ms``.

        An ant restarting after a crash calls this with ``min_idle_ms=0`` to get back what it
        had read but not finished.
        """

    # -- responses (ants -> queens) ----------------------------------------------------------
    @abc.abstractmethod
    def send_response(self, resp: TaskResponse) -> None:
        """Publish a response to the queens' group."""

    def send_response_and_ack(self, ant_id: str, delivery_id: str, resp: TaskResponse) -> None:
        """Publish ``resp`` then ack the request it answers (one round trip where possible)."""
        self.send_batch(responses=[resp], ack=(ant_id, delivery_id))

    def send_batch(
        self,
        lines: Sequence[LogLine] = (),
        responses: Sequence[TaskResponse] = (),
        ack: tuple[str, str] | None = None,
        read: tuple[str, str, int] | None = None,
    ) -> list[Delivery[TaskRequest]]:
        """An ant's writes in one go (one round trip where possible), in this order: ``lines``
        (as ``publish_logs``), ``responses``, the ack of request ``ack = (ant_id, delivery_id)``
        (with the responses as one event where possible), then a non-blocking read of up to
        ``count`` new requests, ``read = (ant_id, consumer, count)``, which it returns.

        The read lets a finishing task fetch its successor in the round trip that reports it;
        implementations may leave control requests to ``read_tasks``. A failed write raises; a
        failed read returns ``[]`` (``read_tasks`` gets those requests).
        """
        if lines:
            self.publish_logs(list(lines))
        for resp in responses:
            self.send_response(resp)
        if ack is not None:
            self.ack_task(*ack)
        if read is None:
            return []
        ant_id, consumer, count = read
        try:
            return self.read_tasks(ant_id, consumer, 0, count)
        except TransportClosed:
            raise
        except Exception:
            logger.warning("reading the next requests of %s failed", ant_id, exc_info=True)
            return []

    @abc.abstractmethod
    def read_responses(self, group_consumer: str, block_ms: int, count: int) -> list[Delivery[TaskResponse]]:
        """Read new responses as ``group_consumer`` of the ``queens`` group."""

    @abc.abstractmethod
    def ack_response(self, delivery_id: str) -> None: ...

    def ack_responses(self, delivery_ids: Iterable[str]) -> None:
        """``ack_response`` for each id (one round trip where possible)."""
        for delivery_id in delivery_ids:
            self.ack_response(delivery_id)

    @abc.abstractmethod
    def claim_stale_responses(self, consumer: str, min_idle_ms: int) -> list[Delivery[TaskResponse]]:
        """XAUTOCLAIM: responses pending longer than ``min_idle_ms`` (a dead queen's) move to us."""

    # -- registrations (ants -> every queen) ---------------------------------------------------
    def registration_key(self, ant_id: str) -> str:
        """What an ant puts in its registration's ``encryption_key``: the public id of its message
        key, "" when messages are not encrypted (always, in process)."""
        return ""

    @abc.abstractmethod
    def publish_registration(self, reg: AntRegistration) -> None: ...

    @abc.abstractmethod
    def read_registrations(self, block_ms: int) -> list[AntRegistration]:
        """Registrations published since this transport's previous call (fan-out per reader).

        The first call returns only registrations published after it started; use
        ``ant_registrations()`` for the current state.
        """

    @abc.abstractmethod
    def ant_registrations(
        self, max_age_secs: float = DEFAULT_ANT_TTL_SECS, include_shutting_down: bool = False
    ) -> dict[str, AntRegistration]:
        """Latest registration per live ant (heard from within ``max_age_secs``, by created_at)."""

    # -- logs ----------------------------------------------------------------------------------
    def publish_log(self, line: LogLine) -> None:
        self.publish_logs([line])

    @abc.abstractmethod
    def publish_logs(self, lines: list[LogLine]) -> None:
        """Append lines to their task's log stream and to the shared fan-in stream."""

    @abc.abstractmethod
    def read_logs(self, task_execution_id: int, after_id: str, block_ms: int) -> list[tuple[str, LogLine]]:
        """Lines of one task execution after ``after_id`` ("0" for all); ids are opaque, ordered."""

    @abc.abstractmethod
    def log_ttl_secs(self, task_execution_id: int) -> float | None:
        """Seconds until the task's log stream expires (None: it has no stream)."""

    @abc.abstractmethod
    def read_all_logs(self, consumer: str, block_ms: int, count: int = 1000) -> list[Delivery[LogLine]]:
        """Fan-in: every line of every task, read as ``consumer`` of the ``log-writers`` group."""

    @abc.abstractmethod
    def ack_logs(self, delivery_ids: Iterable[str]) -> None: ...

    @abc.abstractmethod
    def claim_stale_logs(self, consumer: str, min_idle_ms: int) -> list[Delivery[LogLine]]: ...

    # -- lifecycle -----------------------------------------------------------------------------
    @abc.abstractmethod
    def wake(self) -> None:
        """Make every blocked read of this transport return now."""

    def wake_queens(self) -> None:
        """Make the queens' blocked reads of responses return now (a request was submitted), in
        this process or, over a shared broker, in any other. In-process: ``wake()``."""
        self.wake()

    @abc.abstractmethod
    def close(self) -> None:
        """Wake blocked readers and release resources; later calls raise ``TransportClosed``."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


M = TypeVar("M", TaskRequest, TaskResponse, AntRegistration, LogLine)


def decode_entry(cls: type[M], raw: object, where: str) -> M | None:
    """Decode one stream entry; log and return None when it is malformed (caller acks/skips it)."""
    try:
        if raw is None:
            raise ProtocolError(f"{cls.__name__}: entry has no message field")
        return cls.from_json(raw)  # type: ignore[arg-type]
    except ProtocolError as exc:
        logger.warning("skipping malformed entry %s: %s", where, exc)
        return None
