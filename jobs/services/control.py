"""User control of work: cancel, pause, resume, restart and trigger. Whether a request may make
the move is the transitions table's answer (``jobs.domain.transitions``), not checked again here."""

import contextlib
import functools

from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction

from jobs.domain import follow, transitions
from jobs.domain.messaging import get_transport
from jobs.domain.sends import cancel_on_ants
from jobs.domain.specs import graph_spec, task_of
from jobs.models import JobDefinition, JobRequest, TaskExecution
from jobs.states import JOB_TERMINAL, JobState, TaskState


def _refuse(request: JobRequest, action: str) -> ValidationError:
    request.refresh_from_db(fields=["job_state"])
    return ValidationError(f"cannot {action} job request {request.pk}: it is {request.job_state}")


DEADLOCK_TRIES = 3


def request_cancel(*, request: JobRequest, reason: str = "cancelled by user") -> JobRequest:
    """Cancel a pending, paused or running request and its forked children; tasks running on
    ants are killed there."""
    for attempt in range(DEADLOCK_TRIES):
        try:
            with transaction.atomic():
                if not transitions.job_cancel(request.pk, reason):
                    raise _refuse(request, "cancel")
                on_ants = transitions.tasks_cancel(
                    request.executions.values_list("pk", flat=True), request.pk
                )
                transaction.on_commit(functools.partial(_tell_ants, on_ants, request.pk))
            break
        except OperationalError as exc:
            # the queen may be finishing one of these tasks, its rows locked in the other order:
            # PostgreSQL aborts one of the two, and the cancel is simply tried again
            if attempt + 1 == DEADLOCK_TRIES or getattr(exc.__cause__, "sqlstate", None) != "40P01":
                raise
    for child in JobRequest.objects.filter(parent=request).exclude(
        job_state__in=[s.value for s in JOB_TERMINAL]
    ):
        request_cancel(request=child, reason=f"parent job {request.pk} was cancelled")
    request.refresh_from_db()
    return request


class TaskNotRunning(ValidationError):
    """The task asked for is not running (READY, STARTED or EXECUTING): nothing to cancel."""


def task_cancel(*, request: JobRequest, task_type: str, reason: str = "cancelled by user") -> TaskExecution:
    """Cancel one task of the request's current execution: it ends CANCELLED (killed on its ant
    after the commit, as a whole request's cancel does) and the job goes on as the policy says
    for a cancelled task (its ``on_failed`` path, or the job fails), never retrying it.

    ``TaskExecution.DoesNotExist`` when the definition has no such task; ``TaskNotRunning`` when
    it has not started or has ended. A forked job the task waits for is cancelled with it."""
    graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
    if task_of(graph, task_type) is None:
        raise TaskExecution.DoesNotExist(f"job request {request.pk} has no task {task_type!r}")
    task: TaskExecution | None = None
    for attempt in range(DEADLOCK_TRIES):
        try:
            with transaction.atomic():
                task = (
                    TaskExecution.objects.filter(
                        job_execution_id=request.last_execution_id, task_type=task_type
                    )
                    .select_related("job_execution")
                    .first()
                )
                if task is None:
                    raise TaskNotRunning(f"cannot cancel task {task_type} of job request {request.pk}: "
                                         "it has not started")  # fmt: skip
                moved, on_ant = transitions.task_cancel(task.pk, request.pk, reason)
                if not moved:
                    task.refresh_from_db(fields=["task_state"])
                    raise TaskNotRunning(f"cannot cancel task {task_type} of job request {request.pk}: "
                                         f"it is {task.task_state}")  # fmt: skip
                if on_ant is not None:
                    transaction.on_commit(functools.partial(_tell_ants, [on_ant], request.pk))
                follow.after_end(task, request, task.job_execution, graph, TaskState.CANCELLED, None,
                                 "ERR_TASK_CANCELLED", reason)  # fmt: skip
            break
        except OperationalError as exc:  # as in request_cancel: the queen may hold these rows
            if attempt + 1 == DEADLOCK_TRIES or getattr(exc.__cause__, "sqlstate", None) != "40P01":
                raise
    assert task is not None  # found, or TaskNotRunning was raised
    forked = (task.context or {}).get("ForkedJobID")
    if forked:  # a FORK_JOB waiting for its child (wait_for_completion): the child goes too
        child = JobRequest.objects.filter(pk=forked, parent=request).first()
        if child is not None and child.job_state not in JOB_TERMINAL:
            with contextlib.suppress(ValidationError):  # it ended meanwhile
                request_cancel(request=child, reason=f"task {task_type} of job {request.pk} was cancelled")
    task.refresh_from_db()
    return task


def _tell_ants(on_ants: list[tuple[int, str, int]], request_id: int) -> None:
    cancel_on_ants(get_transport(), on_ants, request_id)


def request_pause(*, request: JobRequest) -> JobRequest:
    """No new task of this request starts until it is resumed; a task on an ant finishes."""
    if not transitions.job_pause(request.pk, "paused by user"):
        raise _refuse(request, "pause")
    request.refresh_from_db()
    return request


def request_resume(*, request: JobRequest) -> JobRequest:
    if not transitions.job_resume(request.pk):
        raise _refuse(request, "resume")
    request.refresh_from_db()
    return request


def request_restart(
    *, request: JobRequest, hard: bool = False, definition: JobDefinition | None = None
) -> JobRequest:
    """Run a finished request again. A soft restart reuses the tasks its last execution
    completed (except ``allow_start_if_completed`` ones); ``hard`` re-runs every task.
    ``definition`` (another version of its job type) is what it runs from now on."""
    if request.job_state == JobState.PAUSED:
        return request_resume(request=request)
    allowed = [JobState.FAILED, JobState.CANCELLED, JobState.COMPLETED]
    with transaction.atomic():
        if definition is not None and definition.pk != request.job_definition_id:
            JobRequest.objects.filter(pk=request.pk, job_state__in=allowed).update(
                job_definition=definition, job_version=definition.sem_version or str(definition.version)
            )
        if not transitions.job_requeue(
            request.pk, None, None, "restarted by user", hard=hard, count_retry=False, from_states=allowed
        ):
            raise _refuse(request, "restart")  # leaves the definition as it was
    request.refresh_from_db()
    return request


def request_trigger(*, request: JobRequest) -> JobRequest:
    """A request scheduled for later (e.g. a scheduled or cron job) runs now."""
    if not transitions.job_trigger(request.pk):
        raise _refuse(request, "trigger")
    request.refresh_from_db()
    return request
