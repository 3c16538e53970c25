"""The one door for every job and task state change.

Each change is a conditional update (``UPDATE ... WHERE state IN <expected>``): when two queens
race, one update matches and the other changes nothing and is told so. Callers run these inside
their own transaction so a decision and its consequences commit together; events go out after
the commit.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.queen import events
from jobs.states import JOB_RUNNING, JOB_TERMINAL, TASK_ACTIVE, JobState, TaskState

RUNNING_TASK = (TaskState.STARTED, TaskState.EXECUTING)


def _values(states: Iterable[str]) -> list[str]:
    return [str(s) for s in states]


def _task_event(task: TaskExecution | int, request_id: int, state: str, **extra: Any) -> None:
    task_id = task if isinstance(task, int) else task.pk
    events.emit("task_state", {"job_request_id": request_id, "task_execution_id": task_id, "task_state": state,
                               **extra})  # fmt: skip


def _job_event(request_id: int, state: str, **extra: Any) -> None:
    events.emit("job_state", {"job_request_id": request_id, "job_state": state, **extra})


# -- job requests -------------------------------------------------------------------------------


def request_claim(request_id: int) -> bool:
    """PENDING -> READY: this queen starts the request."""
    now = timezone.now()
    won = (
        JobRequest.objects.filter(pk=request_id, job_state=JobState.PENDING).update(
            job_state=JobState.READY, state_message="", not_before=None, updated_at=now
        )
        == 1
    )
    if won:
        _job_event(request_id, JobState.READY)
    return won


def request_wait(request_id: int, reason: str, not_before: datetime) -> None:
    """A PENDING request that cannot start yet says why and is looked at again later."""
    JobRequest.objects.filter(pk=request_id, job_state=JobState.PENDING).update(
        state_message=reason[:500], not_before=not_before, schedule_attempts=F("schedule_attempts") + 1
    )


def execution_create(request: JobRequest, reuse_execution_id: int | None = None) -> JobExecution:
    """A new execution of a claimed request; after a soft restart or retry it may reuse the
    completed tasks of ``reuse_execution_id``."""
    request.refresh_from_db(fields=["hard_reset"])
    execution = JobExecution.objects.create(
        organization_id=request.organization_id, job_request=request, job_state=JobState.READY,
        reuse_execution_id=None if request.hard_reset else reuse_execution_id,
    )  # fmt: skip
    JobRequest.objects.filter(pk=request.pk).update(last_execution=execution, hard_reset=False)
    request.last_execution = execution
    return execution


def job_executing(request_id: int, execution_id: int) -> bool:
    """READY -> EXECUTING when its first task goes to an ant."""
    now = timezone.now()
    JobExecution.objects.filter(pk=execution_id, job_state=JobState.READY).update(
        job_state=JobState.EXECUTING, updated_at=now
    )
    won = (
        JobRequest.objects.filter(pk=request_id, job_state=JobState.READY).update(
            job_state=JobState.EXECUTING, updated_at=now
        )
        == 1
    )
    if won:
        _job_event(request_id, JobState.EXECUTING)
    return won


def job_finish(
    request_id: int,
    execution_id: int,
    state: JobState,
    *,
    error_code: str = "",
    error_message: str = "",
    exit_code: str = "",
    from_states: Iterable[str] = JOB_RUNNING,
) -> bool:
    """Running -> COMPLETED / FAILED / FILTERED."""
    now = timezone.now()
    won = (
        JobRequest.objects.filter(pk=request_id, job_state__in=_values(from_states)).update(
            job_state=state,
            error_code=error_code,
            error_message=error_message[:10_000],
            state_message="",
            updated_at=now,
        )  # fmt: skip
        == 1
    )
    if won:
        JobExecution.objects.filter(pk=execution_id).update(
            job_state=state, error_code=error_code, error_message=error_message[:10_000], exit_code=exit_code,
            ended_at=now, updated_at=now,
        )  # fmt: skip
        _job_event(request_id, state, error_code=error_code)
    return won


def job_requeue(
    request_id: int,
    execution_id: int | None,
    not_before: datetime | None,
    reason: str,
    *,
    hard: bool = False,
    count_retry: bool = True,
    from_states: Iterable[str] | None = None,
) -> bool:
    """Running or finished -> PENDING for a job retry, RESTART_JOB or a user restart; a new
    execution follows (``hard``: it re-runs every task)."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "job_state": JobState.PENDING,
        "not_before": not_before,
        "state_message": reason[:500],
        "error_code": "",
        "error_message": "",
        "hard_reset": hard,
        "updated_at": now,
    }
    if count_retry:
        fields["retried"] = F("retried") + 1
    allowed = from_states or {*JOB_RUNNING, JobState.PAUSED, JobState.FAILED, JobState.CANCELLED}
    won = JobRequest.objects.filter(pk=request_id, job_state__in=_values(allowed)).update(**fields) == 1
    if won:
        if execution_id:
            JobExecution.objects.filter(pk=execution_id, job_state__in=_values(JOB_RUNNING)).update(
                job_state=JobState.FAILED, ended_at=now, updated_at=now
            )
        _job_event(request_id, JobState.PENDING, reason=reason)
    return won


def job_pause(request_id: int, reason: str, resume_at: datetime | None = None) -> bool:
    """Waiting or running -> PAUSED: no new task starts (one on an ant finishes). ``resume_at``
    resumes it by itself (PAUSE_JOB); without it the user resumes it."""
    won = (
        JobRequest.objects.filter(
            pk=request_id, job_state__in=_values({JobState.PENDING, *JOB_RUNNING})
        ).update(
            job_state=JobState.PAUSED,
            not_before=resume_at,
            state_message=reason[:500],
            updated_at=timezone.now(),
        )
        == 1
    )
    if won:
        _job_event(request_id, JobState.PAUSED, reason=reason)
    return won


def job_resume(request_id: int) -> bool:
    """PAUSED -> EXECUTING when it has an unfinished execution, else back to PENDING."""
    request = JobRequest.objects.filter(pk=request_id).select_related("last_execution").first()
    if request is None:
        return False
    execution = request.last_execution
    running = execution is not None and execution.job_state not in _values(JOB_TERMINAL)
    target = JobState.EXECUTING if running else JobState.PENDING
    won = (
        JobRequest.objects.filter(pk=request_id, job_state=JobState.PAUSED).update(
            job_state=target, not_before=None, state_message="", updated_at=timezone.now()
        )
        == 1
    )
    if won:
        _job_event(request_id, target)
    return won


def job_trigger(request_id: int) -> bool:
    """A PENDING request scheduled for later runs now."""
    now = timezone.now()
    won = (
        JobRequest.objects.filter(pk=request_id, job_state=JobState.PENDING).update(
            scheduled_at=now, not_before=None, updated_at=now
        )
        == 1
    )
    if won:
        _job_event(request_id, JobState.PENDING, reason="triggered")
    return won


def job_cancel(request_id: int, reason: str = "cancelled") -> bool:
    """Any non-final state -> CANCELLED."""
    now = timezone.now()
    won = (
        JobRequest.objects.filter(pk=request_id)
        .exclude(job_state__in=_values(JOB_TERMINAL))
        .update(job_state=JobState.CANCELLED, state_message=reason[:500], updated_at=now)
        == 1
    )
    if won:
        JobExecution.objects.filter(job_request_id=request_id).exclude(
            job_state__in=_values(JOB_TERMINAL)
        ).update(job_state=JobState.CANCELLED, ended_at=now, updated_at=now)
        _job_event(request_id, JobState.CANCELLED)
    return won


# -- tasks --------------------------------------------------------------------------------------


def task_ready(
    execution: JobExecution, task_type: str, method: str, *, allow_failure: bool = False,
    not_before: datetime | None = None, first: bool = False,
) -> TaskExecution:  # fmt: skip
    """Create the task's row, or make a finished one READY again (a graph may revisit a task).

    ``first``: the execution was just created in this transaction, so it has no task yet (one
    INSERT instead of a look-up, a count and a savepoint-guarded insert)."""
    fields = {"organization_id": execution.organization_id, "method": method, "allow_failure": allow_failure,
              "task_state": TaskState.READY, "not_before": not_before}  # fmt: skip
    if first:
        task = TaskExecution.objects.create(
            job_execution=execution, task_type=task_type, task_order=0, **fields
        )
        _task_event(task, execution.job_request_id, TaskState.READY, task_type=task_type)
        return task
    # one query tells whether the task exists and how many the execution has (its order)
    existing = dict(TaskExecution.objects.filter(job_execution=execution).values_list("task_type", "pk"))
    created = task_type not in existing
    if created:
        try:
            with transaction.atomic():  # a savepoint: another queen may have inserted it meanwhile
                task = TaskExecution.objects.create(job_execution=execution, task_type=task_type,
                                                    task_order=len(existing), **fields)  # fmt: skip
        except IntegrityError:
            task, created = TaskExecution.objects.get(job_execution=execution, task_type=task_type), False
    else:
        task = TaskExecution.objects.get(pk=existing[task_type])
    if not created:
        TaskExecution.objects.filter(pk=task.pk).exclude(task_state__in=_values(TASK_ACTIVE)).update(
            task_state=TaskState.READY, method=method, ant_id="", not_before=not_before, exit_code="",
            exit_message="", error_code="", error_message="", failed_command="", ended_at=None,
        )  # fmt: skip
        task.refresh_from_db()
    _task_event(task, execution.job_request_id, TaskState.READY, task_type=task_type)
    return task


def task_dispatch(task_id: int, request_id: int, ant_id: str, attempt: int) -> int | None:
    """READY (at ``attempt``, as the caller read it) -> STARTED on ``ant_id`` at ``attempt + 1``;
    returns the new attempt number, None if another queen won (or the row moved on meanwhile)."""
    now = timezone.now()
    updated = TaskExecution.objects.filter(pk=task_id, task_state=TaskState.READY, attempt=attempt).update(
        task_state=TaskState.STARTED, ant_id=ant_id, attempt=attempt + 1, updated_at=now, started_at=now,
    )  # fmt: skip
    if updated != 1:
        return None
    attempt += 1
    _task_event(task_id, request_id, TaskState.STARTED, ant_id=ant_id)
    return attempt


def task_executing(task_id: int, request_id: int, attempt: int) -> bool:
    won = (
        TaskExecution.objects.filter(pk=task_id, attempt=attempt, task_state=TaskState.STARTED).update(
            task_state=TaskState.EXECUTING, updated_at=timezone.now()
        )
        == 1
    )
    if won:
        _task_event(task_id, request_id, TaskState.EXECUTING)
    return won


def task_finish(task_id: int, request_id: int, attempt: int | None, state: TaskState, **result: Any) -> bool:
    """STARTED/EXECUTING -> a final state, only for the current attempt (stale replies are ignored)."""
    now = timezone.now()
    qs = TaskExecution.objects.filter(pk=task_id, task_state__in=_values(RUNNING_TASK))
    if attempt is not None:
        qs = qs.filter(attempt=attempt)
    won = qs.update(task_state=state, ended_at=now, updated_at=now, **result) == 1
    if won:
        _task_event(task_id, request_id, state, exit_code=result.get("exit_code", ""))
    return won


def task_finish_ready(task_id: int, request_id: int, state: TaskState, **result: Any) -> bool:
    """READY -> final without an ant: skipped by ``except`` or failed before dispatch."""
    now = timezone.now()
    won = (
        TaskExecution.objects.filter(pk=task_id, task_state=TaskState.READY).update(
            task_state=state, started_at=now, ended_at=now, updated_at=now, **result
        )
        == 1
    )
    if won:
        _task_event(task_id, request_id, state, exit_code=result.get("exit_code", ""))
    return won


def task_requeue(
    task_id: int, request_id: int, *, from_states: Iterable[str], not_before: datetime | None,
    count_retry: bool, reason: str = "",
) -> bool:  # fmt: skip
    """Back to READY: a retry, a repeat (EXECUTING target) or a dead ant's task."""
    fields: dict[str, Any] = {
        "task_state": TaskState.READY, "ant_id": "", "not_before": not_before, "updated_at": timezone.now(),
        "error_message": reason[:10_000],
    }  # fmt: skip
    if count_retry:
        fields["retried"] = F("retried") + 1
    won = TaskExecution.objects.filter(pk=task_id, task_state__in=_values(from_states)).update(**fields) == 1
    if won:
        _task_event(task_id, request_id, TaskState.READY, reason=reason)
    return won


def tasks_cancel(execution_ids: Iterable[int], request_id: int) -> list[tuple[int, str, int]]:
    """Active tasks of these executions -> CANCELLED; returns (task id, ant id, attempt) of those
    that were on an ant, so the caller can tell the ants to stop them."""
    now = timezone.now()
    active = list(
        TaskExecution.objects.filter(
            job_execution_id__in=list(execution_ids), task_state__in=_values(TASK_ACTIVE)
        ).values_list("pk", "ant_id", "attempt", "task_state")
    )
    on_ants = []
    for task_id, ant_id, attempt, state in active:
        won = TaskExecution.objects.filter(pk=task_id, task_state=state).update(
            task_state=TaskState.CANCELLED, ended_at=now, updated_at=now
        )
        if won:
            _task_event(task_id, request_id, TaskState.CANCELLED)
            if ant_id and state in RUNNING_TASK:
                on_ants.append((task_id, ant_id, attempt))
    return on_ants
