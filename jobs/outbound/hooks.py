"""What the queen does when jobs and tasks end, after its commit (transitions.py calls these
through ``transaction.on_commit``): it hands the ends to one background thread of its process,
which observes the metrics and enqueues the Celery tasks of those that have any. Ends written by
the queen's answers and by ``jobs_finish`` come with what that needs (``*_known``); others are
ids, looked up in that thread. The queen's loop
spends neither a query nor a broker round trip on it (tests/engine/test_query_counts.py).
Ids still in that thread's queue when the process dies are lost: notifications are at most once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db import close_old_connections, connection

from jobs.domain.specs import graph_of
from jobs.models import JobRequest, TaskExecution
from jobs.outbound import metrics, runner

log = logging.getLogger(__name__)


CHECK_CONNECTION_SECS = 5.0
_pending: queue.SimpleQueue[tuple[Callable[[list[Any]], None], list[Any]]] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_lock = threading.Lock()


# A task that ended, as the queen knew it when it wrote the end: (task id, task type, method,
# state, started at, ended at, request id, definition id).
EndedTask = tuple[int, str, str, str, datetime | None, datetime | None, int, int]


def jobs_ended(request_ids: Iterable[int]) -> None:
    _submit(_jobs_ended, list(request_ids))


def jobs_ended_known(requests: Iterable[tuple[int, int]]) -> None:
    """Requests (id, definition id) that ended, read by the writer: nothing to look up."""
    _submit(_enqueue_jobs, list(requests))


def tasks_ended(task_ids: Iterable[int]) -> None:
    _submit(_tasks_ended, list(task_ids))


def tasks_ended_known(tasks: Iterable[EndedTask]) -> None:
    """Tasks that ended, with what their writer knew of them: nothing to look up (the queen's
    answers; the look-ups were most of this thread's CPU, a share of a standalone process's GIL)."""
    _submit(_observe_tasks, list(tasks))


def _submit(step: Callable[[list[Any]], None], ids: list[Any]) -> None:
    global _worker
    with _lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_drain, name="outbound-hooks", daemon=True)
            _worker.start()
    _pending.put((step, ids))


def _drain() -> None:
    checked = 0.0
    while True:
        step, ids = _pending.get()
        # the thread's connection is looked at (a round trip with health checks on) after an
        # error and every few seconds, not before each commit's ids
        if connection.errors_occurred or time.monotonic() - checked > CHECK_CONNECTION_SECS:
            close_old_connections()
            checked = time.monotonic()
        step(ids)


def _jobs_ended(request_ids: list[int]) -> None:
    """Enqueue `job_ended` for the finished jobs whose definition has `notify` or `webhook`."""
    try:
        rows = JobRequest.objects.filter(pk__in=request_ids).values_list("pk", "job_definition_id")
    except Exception:
        log.exception("could not read the ended requests %s", request_ids)
        return
    _enqueue_jobs(list(rows))


def _enqueue_jobs(requests: list[tuple[int, int]]) -> None:
    try:
        for request_id, definition_id in requests:
            graph = graph_of(definition_id)
            if graph.notify or graph.webhook:
                runner.enqueue("jobs.tasks.job_ended", request_id=request_id)
    except Exception:  # a broker that is down must not fail the queen's pass: the job has ended
        log.exception("could not enqueue the outbound work of requests %s", [r for r, _ in requests])


def _tasks_ended(task_ids: list[int]) -> None:
    """Observe the finished tasks' durations; enqueue the webhooks and notifications of those
    whose task has a `webhook` or a `notify`."""
    try:
        rows = TaskExecution.objects.filter(pk__in=task_ids).values_list(
            "pk", "task_type", "method", "task_state", "started_at", "ended_at",
            "job_execution__job_request_id", "job_execution__job_request__job_definition_id",
        )  # fmt: skip
    except Exception:
        log.exception("could not read the ended tasks %s", task_ids)
        return
    _observe_tasks(list(rows))


def _observe_tasks(tasks: list[EndedTask]) -> None:
    try:
        for task_id, task_type, method, state, started, ended, request_id, definition_id in tasks:
            metrics.TASKS_FINISHED.labels(method=method, state=state).inc()
            if started and ended:
                metrics.TASK_DURATION.labels(method=method).observe((ended - started).total_seconds())
            task = graph_of(definition_id).task(task_type)
            if task is not None and task.webhook:
                runner.enqueue("jobs.tasks.call_webhook", request_id=request_id, task_execution_id=task_id)
            if task is not None and task.notify:
                runner.enqueue("jobs.tasks.task_ended", request_id=request_id, task_execution_id=task_id)
    except Exception:
        log.exception("could not enqueue the outbound work of tasks %s", [t[0] for t in tasks])
