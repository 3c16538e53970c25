"""What the queen does when jobs and tasks end, after its commit (transitions.py calls these
through ``transaction.on_commit``): observe metrics and enqueue ids, no outbound I/O."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from jobs.models import JobRequest, TaskExecution
from jobs.outbound import metrics, runner
from jobs.queen.specs import graph_of

log = logging.getLogger(__name__)


def jobs_ended(request_ids: Iterable[int]) -> None:
    """Enqueue `job_ended` for the finished jobs whose definition has `notify` or `webhook`."""
    try:
        rows = JobRequest.objects.filter(pk__in=list(request_ids)).values_list("pk", "job_definition_id")
        for request_id, definition_id in rows:
            graph = graph_of(definition_id)
            if graph.notify or graph.webhook:
                runner.enqueue("jobs.tasks.job_ended", request_id=request_id)
    except Exception:  # a broker that is down must not fail the queen's pass: the job has ended
        log.exception("could not enqueue the outbound work of requests %s", request_ids)


def tasks_ended(task_ids: Iterable[int]) -> None:
    """Observe the finished tasks' durations; enqueue the webhooks of those whose task has one."""
    try:
        rows = TaskExecution.objects.filter(pk__in=list(task_ids)).values_list(
            "pk", "task_type", "method", "task_state", "started_at", "ended_at",
            "job_execution__job_request_id", "job_execution__job_request__job_definition_id",
        )  # fmt: skip
        for task_id, task_type, method, state, started, ended, request_id, definition_id in rows:
            metrics.TASKS_FINISHED.labels(method=method, state=state).inc()
            if started and ended:
                metrics.TASK_DURATION.labels(method=method).observe((ended - started).total_seconds())
            task = graph_of(definition_id).task(task_type)
            if task is not None and task.webhook:
                runner.enqueue("jobs.tasks.call_webhook", request_id=request_id, task_execution_id=task_id)
    except Exception:
        log.exception("could not enqueue the outbound work of tasks %s", task_ids)
