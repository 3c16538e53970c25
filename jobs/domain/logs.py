"""Persisting task output: the ants stream log lines; the queen stores them in batches.

Every SHELL command is echoed as a ``system`` line (``$ true``), so even a task that prints
nothing sends a line. Storing costs a read, two statements and an ack per batch whatever its
size, so a writer that drained the stream lets lines gather for ``LINGER_SECS`` before reading
again: under a steady trickle of short tasks it stores a few batches a second instead of one per
task. Live output does not wait for this: viewers tail the per-task stream, not the table.
"""

import logging
import threading
from collections import defaultdict

from django.db import close_old_connections, connections
from django.db.models import QuerySet

from ants.messaging.base import Delivery, Transport
from ants.protocol import LogLine
from jobs import fastsql
from jobs.models import TaskExecution, TaskLogChunk

log = logging.getLogger(__name__)

_CHUNK_COLUMNS = (
    "organization_id",
    "task_execution_id",
    "attempt",
    "first_seq",
    "last_seq",
    "text",
    "streams",
)
# a line's stream as stored (one letter per line) and back
_STREAM_LETTERS = {"stdout": "o", "stderr": "e", "system": "s"}
_LETTER_STREAMS = {v: k for k, v in _STREAM_LETTERS.items()}
READ_COUNT = 5000  # lines per batch at most
LINGER_SECS = 0.1  # after a batch smaller than READ_COUNT (the stream is drained)


def _task_orgs(ids: list[int]) -> "QuerySet[TaskExecution]":
    return TaskExecution.objects.filter(pk__in=ids).values_list("pk", "organization_id")  # type: ignore[return-value]


# compiled once per shape: Django compiling it for every batch was most of the writer's CPU
_TASK_ORGS = fastsql.ByShape(_task_orgs, ids=int)


def store_lines(deliveries: list[Delivery[LogLine]]) -> int:
    """One chunk row per task execution and attempt in this batch."""
    by_task: dict[tuple[int, int], list[LogLine]] = defaultdict(list)
    for delivery in deliveries:
        by_task[(delivery.message.task_execution_id, delivery.message.attempt)].append(delivery.message)
    orgs = dict(_TASK_ORGS.rows(ids=sorted({k[0] for k in by_task})))
    chunks = []
    for (task_id, attempt), lines in by_task.items():
        if task_id not in orgs:
            continue  # a message about a task that does not exist: drop it
        lines.sort(key=lambda line: line.seq)
        text = "\n".join(line.line for line in lines)
        # a line holding newlines is that many lines once stored: one letter for each
        streams = "".join(
            _STREAM_LETTERS.get(line.stream, "o") * (line.line.count("\n") + 1) for line in lines
        )
        chunks.append((orgs[task_id], task_id, attempt, lines[0].seq, lines[-1].seq, text, streams))
    fastsql.insert_rows(TaskLogChunk, _CHUNK_COLUMNS, chunks)
    return sum(len(lines) for lines in by_task.values())


class LogWriter:
    """Reads the shared log stream as one of the ``log-writers`` group and stores what it reads."""

    def __init__(self, transport: Transport, consumer: str, linger_secs: float = LINGER_SECS) -> None:
        self.transport = transport
        self.consumer = consumer
        self.linger_secs = linger_secs
        self._stop = threading.Event()

    def run_once(self, block_ms: int = 200) -> int:
        """Store one batch; returns how many lines were read."""
        deliveries = self.transport.read_all_logs(self.consumer, block_ms=block_ms, count=READ_COUNT)
        if not deliveries:
            return 0
        store_lines(deliveries)
        self.transport.ack_logs([d.id for d in deliveries])
        return len(deliveries)

    def run_forever(self) -> None:
        # lines a dead writer read but never stored are ours now
        stale = self.transport.claim_stale_logs(self.consumer, min_idle_ms=30_000)
        if stale:
            store_lines(stale)
            self.transport.ack_logs([d.id for d in stale])
        while not self._stop.is_set():
            try:
                read = self.run_once()
            except Exception:
                log.exception("storing log lines failed")
                close_old_connections()
                continue
            if 0 < read < READ_COUNT:
                self._stop.wait(self.linger_secs)  # drained: let the next lines gather
        connections.close_all()

    def stop(self) -> None:
        self._stop.set()


def _chunks(task_execution_id: int, attempt: int | None) -> QuerySet[TaskLogChunk]:
    chunks = TaskLogChunk.objects.filter(task_execution_id=task_execution_id)
    if attempt is not None:
        chunks = chunks.filter(attempt=attempt)
    return chunks.order_by("attempt", "first_seq")


def task_log_text(task_execution_id: int, attempt: int | None = None) -> str:
    return "\n".join(_chunks(task_execution_id, attempt).values_list("text", flat=True))


def task_log_lines(task_execution_id: int, attempt: int | None = None) -> list[tuple[str, str]]:
    """The stored lines as ``(line, stream)``, in order."""
    out: list[tuple[str, str]] = []
    for text, streams in _chunks(task_execution_id, attempt).values_list("text", "streams"):
        lines = text.split("\n")
        letters = streams if len(streams) == len(lines) else "o" * len(lines)
        out += [
            (line, _LETTER_STREAMS.get(letter, "stdout")) for line, letter in zip(lines, letters, strict=True)
        ]
    return out
