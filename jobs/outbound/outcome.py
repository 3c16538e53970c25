"""How a job or task ended, read from the database, and its definition rendered with its data:
what notifications and webhooks say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from jobs.definition.model import JobSpec, TaskSpec
from jobs.domain import context, specs
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.states import JobState, TaskState


@dataclass
class JobOutcome:
    request: JobRequest
    execution: JobExecution | None
    failed_task: TaskExecution | None
    url: str

    @property
    def state(self) -> str:
        return self.request.job_state

    @property
    def succeeded(self) -> bool:
        return self.request.job_state == JobState.COMPLETED

    @property
    def started_at(self) -> datetime | None:
        return self.execution.started_at if self.execution else None

    @property
    def ended_at(self) -> datetime | None:
        return self.execution.ended_at if self.execution else None

    @property
    def duration_secs(self) -> float | None:
        return _duration(self.started_at, self.ended_at)

    @property
    def error_message(self) -> str:
        if self.request.error_message:
            return self.request.error_message
        return self.failed_task.error_message if self.failed_task else ""


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def request_url(request_id: int) -> str:
    return f"{settings.FORMICARY_BASE_URL.rstrip('/')}/jobs/requests/{request_id}"


def job_outcome(request_id: int) -> JobOutcome:
    request = JobRequest.objects.select_related("last_execution", "job_definition", "user").get(pk=request_id)
    execution = request.last_execution
    failed = None
    if execution is not None:
        failed = (
            TaskExecution.objects.filter(job_execution=execution, task_state=TaskState.FAILED)
            .order_by("-ended_at", "-id")
            .first()
        )
    return JobOutcome(request, execution, failed, request_url(request_id))


def rendered_job(request: JobRequest) -> JobSpec:
    """The request's definition rendered with its data (configs, params, task outputs)."""
    return specs.rendered_spec(request.job_definition.raw_yaml, _data(request))


def rendered_task(request: JobRequest, task_type: str) -> TaskSpec | None:
    return specs.rendered_task(request.job_definition.raw_yaml, _data(request), task_type)


def _data(request: JobRequest) -> dict[str, Any]:
    values, _ = context.secrets_and_values(request)
    return context.template_data(request, request.last_execution, values)


def previous_succeeded(request: JobRequest) -> bool | None:
    """How the job type's previous finished run (COMPLETED or FAILED) ended; None if none."""
    state = (
        JobRequest.objects.filter(
            organization_id=request.organization_id, job_type=request.job_type, pk__lt=request.pk,
            job_state__in=[JobState.COMPLETED, JobState.FAILED],
        )
        .order_by("-pk").values_list("job_state", flat=True).first()
    )  # fmt: skip
    return None if state is None else state == JobState.COMPLETED


@dataclass
class TaskOutcome:
    """How one task execution ended (task-level `notify`)."""

    request: JobRequest
    task: TaskExecution
    url: str

    @property
    def state(self) -> str:
        return self.task.task_state

    @property
    def succeeded(self) -> bool:
        return self.task.task_state == TaskState.COMPLETED

    @property
    def duration_secs(self) -> float | None:
        return _duration(self.task.started_at, self.task.ended_at)


def task_outcome(task_execution_id: int) -> TaskOutcome:
    task = TaskExecution.objects.select_related("job_execution").get(pk=task_execution_id)
    request = JobRequest.objects.select_related("last_execution", "job_definition", "user").get(
        pk=task.job_execution.job_request_id
    )
    return TaskOutcome(request, task, request_url(request.pk))


def previous_task_succeeded(outcome: TaskOutcome) -> bool | None:
    """How the same task of the job type's previous run ended (COMPLETED or FAILED); None if none."""
    state = (
        TaskExecution.objects.filter(
            job_execution__job_request__organization_id=outcome.request.organization_id,
            job_execution__job_request__job_type=outcome.request.job_type,
            job_execution__job_request_id__lt=outcome.request.pk, task_type=outcome.task.task_type,
            task_state__in=[TaskState.COMPLETED, TaskState.FAILED],
        )
        .order_by("-pk").values_list("task_state", flat=True).first()
    )  # fmt: skip
    return None if state is None else state == TaskState.COMPLETED


def task_payload(task: TaskExecution) -> dict[str, Any]:
    return {
        "task_execution_id": task.pk, "task_type": task.task_type, "method": task.method,
        "state": task.task_state, "attempt": task.attempt, "exit_code": task.exit_code,
        "error_code": task.error_code, "error_message": task.error_message,
        "started_at": _iso(task.started_at), "ended_at": _iso(task.ended_at),
        "duration_secs": _duration(task.started_at, task.ended_at),
    }  # fmt: skip


def job_payload(outcome: JobOutcome) -> dict[str, Any]:
    r = outcome.request
    return {
        "job_request_id": r.pk, "job_execution_id": outcome.execution.pk if outcome.execution else None,
        "job_type": r.job_type, "job_version": r.job_version, "organization_id": r.organization_id,
        "state": r.job_state, "exit_code": outcome.execution.exit_code if outcome.execution else "",
        "error_code": r.error_code, "error_message": outcome.error_message,
        "failed_task_type": outcome.failed_task.task_type if outcome.failed_task else "",
        "started_at": _iso(outcome.started_at), "ended_at": _iso(outcome.ended_at),
        "duration_secs": outcome.duration_secs, "url": outcome.url,
    }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
