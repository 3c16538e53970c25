"""The one door for every job and task state change.

``MOVES`` is the one table of allowed (from, to) pairs for requests, executions and tasks. Each
change is a conditional update (``UPDATE ... WHERE state IN <sources>``) whose sources must be
allowed by the table:
- asking for a pair the table does not hold raises ``TransitionRefused`` (a bug in the caller,
  never a race), before anything is written;
- a row that is not in one of the sources is left alone and the call says so (``False``, or the
  row is missing from the ids returned): two queens raced and the other one won.
Callers run these inside their own transaction so a decision and its consequences commit
together; events go out after the commit.
"""

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Model
from django.utils import timezone

from jobs import fastsql
from jobs.domain import events, finished_counts
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.outbound import hooks as outbound
from jobs.redaction import redact_errors
from jobs.states import JOB_RUNNING, JOB_TERMINAL, TASK_ACTIVE, JobState, TaskState

RUNNING_TASK = (TaskState.STARTED, TaskState.EXECUTING)

# an execution's cpu_secs: the sum of its tasks' measured run times (orgs.usage counts them)
_TASKS_CPU_SECS = fastsql.SumOf(TaskExecution, "job_execution", "cpu_secs")

_J, _T = JobState, TaskState
_JOB_GOING = (_J.READY, _J.STARTED, _J.EXECUTING)
_REQUEST_NOT_DONE = (_J.PENDING, *_JOB_GOING, _J.PAUSED)
_TASK_DONE = (_T.COMPLETED, _T.FAILED, _T.SKIPPED, _T.CANCELLED)
_TASK_CANCELLABLE = (*TASK_ACTIVE, _T.MANUAL_APPROVAL_REQUIRED)

# The one table: kind -> allowed (from, to) pairs. Everything not listed is refused.
MOVES: dict[str, frozenset[tuple[str, str]]] = {
    "request": frozenset(
        {
            (_J.PENDING, _J.PENDING),  # told why it waits, or triggered now
            (_J.PENDING, _J.READY),  # claimed by a scheduler
            (_J.READY, _J.EXECUTING),  # its first task went to an ant
            (_J.READY, _J.FILTERED),  # skip_if held
            # the job's end (PAUSED: its last task ended while it was paused)
            *((s, end) for s in (*_JOB_GOING, _J.PAUSED) for end in (_J.COMPLETED, _J.FAILED)),
            # a job retry, RESTART_JOB, a user restart
            *((s, _J.PENDING) for s in (*_JOB_GOING, _J.PAUSED, _J.FAILED, _J.CANCELLED, _J.COMPLETED)),
            *((s, _J.PAUSED) for s in (_J.PENDING, *_JOB_GOING)),  # PAUSE_JOB, a user pause
            (_J.PAUSED, _J.EXECUTING),  # resumed with an unfinished execution
            *((s, _J.CANCELLED) for s in _REQUEST_NOT_DONE),
            # a MANUAL task waits for people, and their decision lets the job go on
            (_J.READY, _J.MANUAL_APPROVAL_REQUIRED), (_J.EXECUTING, _J.MANUAL_APPROVAL_REQUIRED),
            (_J.MANUAL_APPROVAL_REQUIRED, _J.EXECUTING), (_J.MANUAL_APPROVAL_REQUIRED, _J.CANCELLED),
        }
    ),
    "execution": frozenset(
        {
            (_J.READY, _J.EXECUTING),
            *((s, end) for s in _JOB_GOING for end in (_J.COMPLETED, _J.FAILED, _J.CANCELLED)),
            (_J.READY, _J.FILTERED),
            (_J.READY, _J.MANUAL_APPROVAL_REQUIRED), (_J.EXECUTING, _J.MANUAL_APPROVAL_REQUIRED),
            (_J.MANUAL_APPROVAL_REQUIRED, _J.EXECUTING), (_J.MANUAL_APPROVAL_REQUIRED, _J.CANCELLED),
        }
    ),
    "task": frozenset(
        {
            (_T.READY, _T.STARTED),  # sent to an ant (or run by the queen)
            (_T.STARTED, _T.EXECUTING),  # the ant acknowledged it
            *((s, end) for s in RUNNING_TASK for end in (_T.COMPLETED, _T.FAILED, _T.CANCELLED)),
            *((_T.READY, end) for end in _TASK_DONE),  # skipped, reused, failed before dispatch
            *((s, _T.READY) for s in _TASK_DONE),  # a retry, a repeat, a revisit
            *((s, _T.READY) for s in RUNNING_TASK),  # its ant was lost or never acknowledged it
            # an exit-code entry overrides the state the ant reported
            (_T.COMPLETED, _T.FAILED), (_T.FAILED, _T.COMPLETED), (_T.SKIPPED, _T.COMPLETED),
            (_T.SKIPPED, _T.FAILED),
            # a MANUAL task waits for reviews (on no ant), then ends as they decide, or is cancelled
            (_T.READY, _T.MANUAL_APPROVAL_REQUIRED),
            *((_T.MANUAL_APPROVAL_REQUIRED, end) for end in (_T.COMPLETED, _T.FAILED, _T.CANCELLED)),
        }
    ),
}  # fmt: skip
_STATES: dict[str, tuple[str, ...]] = {
    "request": tuple(JobState), "execution": tuple(JobState), "task": tuple(TaskState),
}  # fmt: skip


class TransitionRefused(ValueError):
    """A caller asked for a state change the table does not allow."""


def sources(kind: str, to: str, from_states: Iterable[str] | None = None) -> list[str]:
    """The states a ``kind`` row may go to ``to`` from: ``from_states`` when the table allows each
    of them (else ``TransitionRefused``), all the table's sources of ``to`` when None."""
    moves = MOVES[kind]
    if from_states is None:
        found = [s for s in _STATES[kind] if (s, to) in moves]
    else:
        found = [str(s) for s in from_states]
        refused = sorted(s for s in found if (s, str(to)) not in moves)
        if refused:
            raise TransitionRefused(f"{kind} may not go from {', '.join(refused)} to {to}")
    if not found:
        raise TransitionRefused(f"no {kind} may go to {to}")
    return found


_ROWS: dict[str, tuple[type[Model], str]] = {
    "request": (JobRequest, "job_state"), "execution": (JobExecution, "job_state"),
    "task": (TaskExecution, "task_state"),
}  # fmt: skip


def move(
    kind: str, ids: int | Iterable[int] | None, to: str, from_states: Iterable[str] | None = None,
    where: dict[str, Any] | None = None, **fields: Any,
) -> int:  # fmt: skip
    """The one conditional UPDATE of a state: rows of ``ids`` in one of the allowed sources (and
    matching ``where``) go to ``to`` with ``fields``; returns how many moved."""
    model, column = _ROWS[kind]
    allowed = sources(kind, to, from_states)
    qs = model._default_manager.all()
    if ids is not None:
        qs = qs.filter(pk=ids) if isinstance(ids, int) else qs.filter(pk__in=list(ids))
    return qs.filter(**{f"{column}__in": allowed}, **(where or {})).update(**{column: to}, **fields)


def _values(states: Iterable[str]) -> list[str]:
    return [str(s) for s in states]


def _task_event(task: TaskExecution | int, request_id: int, state: str, **extra: Any) -> None:
    task_id = task if isinstance(task, int) else task.pk
    events.emit("task_state", {"job_request_id": request_id, "task_execution_id": task_id, "task_state": state,
                               **extra})  # fmt: skip


def _job_event(request_id: int, state: str, **extra: Any) -> None:
    events.emit("job_state", {"job_request_id": request_id, "job_state": state, **extra})


def _ended_on_commit(request_ids: Iterable[int] = (), task_ids: Iterable[int] = ()) -> None:
    """Notifications, webhooks and metrics of what ended, enqueued once the decision commits."""
    jobs, tasks = list(request_ids), list(task_ids)
    if jobs:
        transaction.on_commit(lambda: outbound.jobs_ended(jobs))
    if tasks:
        transaction.on_commit(lambda: outbound.tasks_ended(tasks))


# -- job requests -------------------------------------------------------------------------------


def request_claim(request_id: int) -> bool:
    """PENDING -> READY: this queen starts the request."""
    return request_id in requests_claim([request_id])


def request_wait(request_id: int, reason: str, not_before: datetime) -> None:
    """A PENDING request that cannot start yet says why and is looked at again later."""
    move("request", request_id, JobState.PENDING, [JobState.PENDING], state_message=reason[:500],
         not_before=not_before, schedule_attempts=F("schedule_attempts") + 1)  # fmt: skip


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
    return request_id in jobs_executing({request_id: execution_id})


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
    won = jobs_finish({request_id: execution_id}, state, error_code=error_code, error_message=error_message,
                      exit_code=exit_code, from_states=from_states)  # fmt: skip
    return request_id in won


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
    allowed = _values(from_states or {*JOB_RUNNING, JobState.PAUSED, JobState.FAILED, JobState.CANCELLED})
    sources("request", JobState.PENDING, allowed)  # refused before anything is read or written
    counted: list[finished_counts.Row] = []
    with transaction.atomic():  # the lock below holds until the move and the count commit
        if set(allowed) & set(finished_counts.FINAL):
            # leaving a final state uncounts the request: its state now, locked until the move
            counted = list(
                JobRequest.objects.select_for_update().filter(pk=request_id, job_state__in=allowed)
                .values_list("organization_id", "job_type", "job_state", "created_at")
            )  # fmt: skip
            if not counted:
                return False
            allowed = [counted[0][2]]
        won = move("request", request_id, fields.pop("job_state"), allowed, **fields) == 1
        if won:
            finished_counts.add(counted, sign=-1)
    if won:
        if execution_id:
            move("execution", execution_id, JobState.FAILED, JOB_RUNNING, ended_at=now, updated_at=now)
        _job_event(request_id, JobState.PENDING, reason=reason)
    return won


def execution_failure(execution_id: int, task_type: str, error_code: str, error_message: str) -> None:
    """The execution's first failed task and its error (the job's error if nothing retries it)."""
    JobExecution.objects.filter(pk=execution_id).update(
        failed_task_type=task_type, error_code=error_code, error_message=error_message[:10_000]
    )


def job_pause(request_id: int, reason: str, resume_at: datetime | None = None) -> bool:
    """Waiting or running -> PAUSED: no new task starts (one on an ant finishes). ``resume_at``
    resumes it by itself (PAUSE_JOB); without it the user resumes it."""
    won = (
        move(
            "request",
            request_id,
            JobState.PAUSED,
            {JobState.PENDING, *JOB_RUNNING},
            not_before=resume_at,
            state_message=reason[:500],
            updated_at=timezone.now(),
        )  # fmt: skip
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
        move(
            "request",
            request_id,
            target,
            [JobState.PAUSED],
            not_before=None,
            state_message="",
            updated_at=timezone.now(),
        )  # fmt: skip
        == 1
    )
    if won:
        _job_event(request_id, target)
    return won


def job_trigger(request_id: int) -> bool:
    """A PENDING request scheduled for later runs now."""
    now = timezone.now()
    won = (
        move(
            "request",
            request_id,
            JobState.PENDING,
            [JobState.PENDING],
            scheduled_at=now,
            not_before=None,
            updated_at=now,
        )  # fmt: skip
        == 1
    )
    if won:
        _job_event(request_id, JobState.PENDING, reason="triggered")
    return won


def job_cancel(request_id: int, reason: str = "cancelled") -> bool:
    """Any non-final state -> CANCELLED."""
    now = timezone.now()
    rows = fastsql.update_returning(
        JobRequest, [request_id], {"job_state": JobState.CANCELLED, "state_message": reason[:500], "updated_at": now},
        where={"job_state": sources("request", JobState.CANCELLED)},
        returning=("organization_id", "job_type", "created_at"),
    )  # fmt: skip
    won = bool(rows)
    if won:
        finished_counts.add(
            [(org_id, job_type, JobState.CANCELLED, created) for org_id, job_type, created in rows]
        )
        move("execution", None, JobState.CANCELLED, where={"job_request_id": request_id}, ended_at=now,
             updated_at=now, cpu_secs=_TASKS_CPU_SECS.expression())  # fmt: skip
        _job_event(request_id, JobState.CANCELLED)
        _ended_on_commit(request_ids=[request_id])
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
        move("task", task.pk, TaskState.READY, _TASK_DONE, method=method, ant_id="", not_before=not_before,
             exit_code="", exit_message="", error_code="", error_message="", failed_command="", ended_at=None)  # fmt: skip
        task.refresh_from_db()
    _task_event(task, execution.job_request_id, TaskState.READY, task_type=task_type)
    return task


def task_dispatch(
    task_id: int, request_id: int, ant_id: str, attempt: int, ant_started_at: float | None = None
) -> int | None:
    """READY (at ``attempt``, as the caller read it) -> STARTED on ``ant_id`` (the incarnation
    started at ``ant_started_at``) at ``attempt + 1``; returns the new attempt number, None if
    another queen won (or the row moved on meanwhile)."""
    now = timezone.now()
    updated = move("task", task_id, TaskState.STARTED, [TaskState.READY], where={"attempt": attempt}, ant_id=ant_id,
                   attempt=attempt + 1, updated_at=now, started_at=now, ant_started_at=ant_started_at)  # fmt: skip
    if updated != 1:
        return None
    attempt += 1
    _task_event(task_id, request_id, TaskState.STARTED, ant_id=ant_id)
    return attempt


def task_executing(task_id: int, request_id: int, attempt: int) -> bool:
    """STARTED -> EXECUTING, only for the current attempt."""
    return tasks_executing([(task_id, request_id, attempt)]) == 1


def task_finish(task_id: int, request_id: int, attempt: int | None, state: TaskState, **result: Any) -> bool:
    """STARTED/EXECUTING -> a final state, only for the current attempt (stale replies are ignored)."""
    now = timezone.now()
    result = redact_errors([request_id], result)
    where = {"attempt": attempt} if attempt is not None else None
    won = move("task", task_id, state, RUNNING_TASK, where=where, ended_at=now, updated_at=now, **result) == 1
    if won:
        _task_event(task_id, request_id, state, exit_code=result.get("exit_code", ""))
        _ended_on_commit(task_ids=[task_id])
    return won


def task_finish_ready(task_id: int, request_id: int, state: TaskState, **result: Any) -> bool:
    """READY -> final without an ant: skipped by ``except`` or failed before dispatch."""
    now = timezone.now()
    result = redact_errors([request_id], result)
    won = (
        move(
            "task", task_id, state, [TaskState.READY], started_at=now, ended_at=now, updated_at=now, **result
        )
        == 1
    )
    if won:
        _task_event(task_id, request_id, state, exit_code=result.get("exit_code", ""))
        _ended_on_commit(task_ids=[task_id])
    return won


def task_requeue(
    task_id: int, request_id: int, *, from_states: Iterable[str], not_before: datetime | None,
    count_retry: bool, reason: str = "",
) -> bool:  # fmt: skip
    """Back to READY: a retry, a repeat (EXECUTING target) or a dead ant's task."""
    reason = redact_errors([request_id], {"error_message": reason[:10_000]})["error_message"]
    fields: dict[str, Any] = {
        "task_state": TaskState.READY, "ant_id": "", "not_before": not_before, "updated_at": timezone.now(),
        "error_message": reason,
    }  # fmt: skip
    if count_retry:
        fields["retried"] = F("retried") + 1
    from_states = _values(from_states)
    earlier = _earlier_attempts(TaskExecution.objects.filter(pk=task_id, task_state__in=from_states))
    if earlier is not None:
        fields["earlier_attempts"] = earlier
    won = move("task", task_id, fields.pop("task_state"), from_states, **fields) == 1
    if won:
        _task_event(task_id, request_id, TaskState.READY, reason=reason)
    return won


def _earlier_attempts(rows: Any) -> list[dict[str, Any]] | None:
    """The row's earlier attempts with the one ending now (a requeue is rare: one more read)."""
    current = rows.values(
        "attempt", "task_state", "exit_code", "error_code", "error_message", "ant_id", "started_at",
        "ended_at", "earlier_attempts",
    ).first()  # fmt: skip
    if current is None or not current["attempt"]:
        return None
    # a task sent again from STARTED/EXECUTING never ended: its ant was lost (or restarted)
    ended = current["task_state"] in (TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED)
    started, ended_at = current["started_at"], current["ended_at"] if ended else timezone.now()
    entry = {
        "attempt": current["attempt"], "state": current["task_state"] if ended else "LOST",
        "exit_code": current["exit_code"] if ended else "", "error_code": current["error_code"] if ended else "",
        "error_message": current["error_message"][:2000] if ended else "", "ant_id": current["ant_id"],
        "started_at": started.isoformat() if started else None,
        "ended_at": ended_at.isoformat() if ended_at else None,
    }  # fmt: skip
    return [*(current["earlier_attempts"] or []), entry]


def task_override(task_id: int, to: TaskState, error_code: str) -> bool:
    """A finished task's state as its exit-code entry says (COMPLETED <-> FAILED)."""
    finished = [s for s in (TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED) if s != to]
    return move("task", task_id, to, finished, error_code=error_code) == 1


def tasks_cancel(
    execution_ids: Iterable[int], request_id: int, *, only: Iterable[int] | None = None
) -> list[tuple[int, str, int]]:
    """Active tasks of these executions (``only``: of these ids) -> CANCELLED; returns (task id,
    ant id, attempt) of those that were on an ant, so the caller can tell the ants to stop them."""
    now = timezone.now()
    rows = TaskExecution.objects.filter(
        job_execution_id__in=list(execution_ids), task_state__in=_values(_TASK_CANCELLABLE)
    )
    if only is not None:
        rows = rows.filter(pk__in=list(only))
    active = list(
        rows.order_by("pk").values_list(  # rows locked in id order, as the queen's batches lock them
            "pk", "ant_id", "attempt", "task_state"
        )
    )
    on_ants = []
    for task_id, ant_id, attempt, state in active:
        won = move("task", task_id, TaskState.CANCELLED, [state], ended_at=now, updated_at=now)
        if won:
            _task_event(task_id, request_id, TaskState.CANCELLED)
            if ant_id and state in RUNNING_TASK:
                on_ants.append((task_id, ant_id, attempt))
    return on_ants


def task_cancel(
    task_id: int, request_id: int, reason: str
) -> tuple[bool, tuple[int, str, int] | None]:  # fmt: skip
    """One active task (READY, STARTED, EXECUTING) -> CANCELLED, its job going on: whether it
    moved, and (task id, ant id, attempt) when it was on an ant, so the caller can tell the ant
    to stop it. Its attempt's late answer finds it no longer running and changes nothing."""
    now = timezone.now()
    row = (
        TaskExecution.objects.select_for_update()
        .filter(pk=task_id, task_state__in=_values(TASK_ACTIVE))
        .values_list("ant_id", "attempt", "task_state")
        .first()
    )
    if row is None:
        return False, None
    ant_id, attempt, state = row
    reason = redact_errors([request_id], {"error_message": reason[:10_000]})["error_message"]
    won = (
        move(
            "task",
            task_id,
            TaskState.CANCELLED,
            [state],
            ended_at=now,
            updated_at=now,
            error_code="ERR_TASK_CANCELLED",
            error_message=reason,
        )  # fmt: skip
        == 1
    )
    if not won:
        return False, None
    _task_event(task_id, request_id, TaskState.CANCELLED)
    _ended_on_commit(task_ids=[task_id])
    return True, ((task_id, ant_id, attempt) if ant_id and state in RUNNING_TASK else None)


# -- manual approval ----------------------------------------------------------------------------


def task_await_approval(
    task_id: int, request_id: int, execution_id: int, attempt: int, reason: str
) -> int | None:
    """READY (at ``attempt``) -> MANUAL_APPROVAL_REQUIRED at ``attempt + 1``, on no ant, with its
    request and execution: the job waits for people's reviews; returns the new attempt, None if
    another queen won."""
    now = timezone.now()
    won = move("task", task_id, TaskState.MANUAL_APPROVAL_REQUIRED, [TaskState.READY], where={"attempt": attempt},
               ant_id="", attempt=attempt + 1, started_at=now, ended_at=None, updated_at=now) == 1  # fmt: skip
    if not won:
        return None
    waiting = JobState.MANUAL_APPROVAL_REQUIRED
    move("execution", execution_id, waiting, [JobState.READY, JobState.EXECUTING], updated_at=now)
    if move("request", request_id, waiting, [JobState.READY, JobState.EXECUTING], state_message=reason[:500],
            updated_at=now):  # fmt: skip
        _job_event(request_id, waiting, reason=reason)
    _task_event(task_id, request_id, TaskState.MANUAL_APPROVAL_REQUIRED)
    return attempt + 1


def task_approval_decided(
    task_id: int, request_id: int, execution_id: int, attempt: int, state: TaskState, **result: Any
) -> bool:
    """MANUAL_APPROVAL_REQUIRED (at ``attempt``) -> COMPLETED / FAILED as the reviews (or the SLA)
    decided; the request and its execution go on EXECUTING. False when it was decided already."""
    now = timezone.now()
    won = move("task", task_id, state, [TaskState.MANUAL_APPROVAL_REQUIRED], where={"attempt": attempt},
               ended_at=now, updated_at=now, **result) == 1  # fmt: skip
    if not won:
        return False
    waiting = [JobState.MANUAL_APPROVAL_REQUIRED]
    move("execution", execution_id, JobState.EXECUTING, waiting, updated_at=now)
    if move("request", request_id, JobState.EXECUTING, waiting, state_message="", updated_at=now):
        _job_event(request_id, JobState.EXECUTING)
    _task_event(task_id, request_id, state, exit_code=result.get("exit_code", ""))
    _ended_on_commit(task_ids=[task_id])
    return True


def instances_create(
    step: TaskExecution, request_id: int, rows: list[tuple[int, str, str, dict[str, Any]]]
) -> list[int]:
    """A fan-out step's instances: (index, state, exit code, context) each, READY (or COMPLETED:
    reused from the execution a restart reuses), named "<step>-fo-<index>", in one INSERT."""
    from jobs.definition.fanout import instance_type

    now = timezone.now()
    for _, state, _, _ in rows:
        if state not in (TaskState.READY, TaskState.COMPLETED):
            raise TransitionRefused(f"an instance is not created {state}")
    ended: dict[str, datetime] = {TaskState.COMPLETED: now}
    ids = fastsql.insert_rows(
        TaskExecution, ("organization_id", "job_execution_id", "task_type", "method", "allow_failure", "task_order",
                        "task_state", "fan_out_of", "fan_out_index", "exit_code", "context", "started_at",
                        "ended_at", "updated_at"),
        [(step.organization_id, step.job_execution_id, instance_type(step.task_type, index), step.method,
          step.allow_failure, step.task_order, state, step.task_type, index, exit_code, context,
          ended.get(state), ended.get(state), now)
         for index, state, exit_code, context in rows],
    )  # fmt: skip
    for task_id, (_, state, _, _) in zip(ids, rows, strict=True):
        _task_event(task_id, request_id, state, task_type=step.task_type, fan_out_of=step.task_type)
    return ids


def instances_rerun(request_id: int, contexts: dict[int, dict[str, Any]]) -> int:
    """Failed or cancelled fan-out instances (id -> their item's context) READY again: a revisit
    of their step runs only those that did not complete."""
    now = timezone.now()
    won = 0
    for task_id, context in contexts.items():
        if move("task", task_id, TaskState.READY, [TaskState.FAILED, TaskState.CANCELLED], ant_id="",
                not_before=None, context=context, exit_code="", exit_message="", error_code="",
                error_message="", failed_command="", ended_at=None, updated_at=now):  # fmt: skip
            _task_event(task_id, request_id, TaskState.READY)
            won += 1
    return won


def child_started(task_id: int, request_id: int, attempt: int, context: dict[str, Any]) -> bool:
    """STARTED -> EXECUTING for a queen task watching the child job it started (its id in
    ``context``)."""
    won = move("task", task_id, TaskState.EXECUTING, [TaskState.STARTED], where={"attempt": attempt},
               context=context, updated_at=timezone.now()) == 1  # fmt: skip
    if won:
        _task_event(task_id, request_id, TaskState.EXECUTING)
    return won


# -- many at once -------------------------------------------------------------------------------
# The queen's hot paths change many rows per pass. Each function below is one statement (or one
# executemany) for the whole batch, still conditional on the expected state; RETURNING tells
# which rows moved, so events go out for those only. SQLite (3.35+) and PostgreSQL both have it.
# The raw SQL is behind jobs.fastsql (FORMICARY_FAST_SQL off: the same moves through the ORM).
_update_returning = fastsql.update_returning


def requests_claim(request_ids: Iterable[int]) -> dict[int, tuple[bool, int | None]]:
    """PENDING -> READY for many; returns id -> (hard_reset, last_execution_id) of those won."""
    rows = _update_returning(
        JobRequest, request_ids,
        {"job_state": JobState.READY, "state_message": "", "not_before": None, "updated_at": timezone.now()},
        where={"job_state": sources("request", JobState.READY, [JobState.PENDING])},
        returning=("id", "hard_reset", "last_execution"),
    )  # fmt: skip
    for request_id, *_ in rows:
        _job_event(request_id, JobState.READY)
    return {request_id: (bool(hard), last) for request_id, hard, last in rows}


# executions_create's update of the requests, reading the executions just inserted (``new``)
_POINT_REQUESTS = (
    f'UPDATE "{JobRequest._meta.db_table}" AS r SET "last_execution_id" = new."id", "hard_reset" = FALSE, '
    f'"job_state" = new."job_state" FROM new WHERE r."id" = new."job_request_id" RETURNING new."id", new."job_request_id"'
)


def executions_create(
    starts: list[tuple[JobRequest, int | None]], executing: AbstractSet[int] = frozenset()
) -> dict[int, JobExecution]:
    """New executions of claimed requests (each with the execution whose completed tasks it may
    reuse), recorded as their requests' last execution. The requests of ``executing`` go READY ->
    EXECUTING in the same write, and their executions start EXECUTING: their first task goes to
    an ant in this transaction (``tasks_create_started``)."""
    if executing:
        sources("request", JobState.EXECUTING, [JobState.READY])  # the table allows it
        sources("execution", JobState.EXECUTING, [JobState.READY])
    now = timezone.now()
    states = {
        request.pk: JobState.EXECUTING if request.pk in executing else JobState.READY for request, _ in starts
    }
    columns = (
        "organization_id",
        "job_request_id",
        "job_state",
        "reuse_execution_id",
        "started_at",
        "updated_at",
    )
    rows = [
        (request.organization_id, request.pk, states[request.pk], reuse, now, now)
        for request, reuse in starts
    ]
    # the requests were claimed READY in this transaction: their rows are this one's to write
    if fastsql.inserts_then():  # the executions and their requests' update in one round trip
        made = {
            request_id: pk
            for pk, request_id in fastsql.insert_then(JobExecution, columns, rows, _POINT_REQUESTS)
        }
        ids = [made[request.pk] for request, _ in starts]
    else:
        ids = fastsql.insert_rows(JobExecution, columns, rows)
        fastsql.update_each(JobRequest, ("id",), ("last_execution_id", "hard_reset", "job_state"),
                            [(pk, False, states[request.pk], request.pk) for pk, (request, _) in zip(ids, starts, strict=True)])  # fmt: skip
    executions = [
        JobExecution(id=execution_id, organization_id=request.organization_id, job_request_id=request.pk,
                     job_state=states[request.pk], reuse_execution_id=reuse, started_at=now, updated_at=now)
        for execution_id, (request, reuse) in zip(ids, starts, strict=True)
    ]  # fmt: skip
    for (request, _), execution in zip(starts, executions, strict=True):
        request.last_execution = execution
        if request.pk in executing:
            request.job_state = JobState.EXECUTING
            _job_event(request.pk, JobState.EXECUTING)
    return {e.job_request_id: e for e in executions}


def tasks_create_ready(rows: list[tuple[JobExecution, str, str, bool, int]]) -> list[int]:
    """New READY tasks: (execution, task type, method, allow_failure, task order) each; returns
    their ids."""
    ids = fastsql.insert_rows(
        TaskExecution, ("organization_id", "job_execution_id", "task_type", "method", "allow_failure", "task_order",
                        "task_state"),
        [(execution.organization_id, execution.pk, task_type, method, allow_failure, order, TaskState.READY)
         for execution, task_type, method, allow_failure, order in rows],
    )  # fmt: skip
    for task_id, (execution, task_type, *_) in zip(ids, rows, strict=True):
        _task_event(task_id, execution.job_request_id, TaskState.READY, task_type=task_type)
    return ids


def tasks_create_started(rows: list[tuple[JobExecution, str, str, bool, str, float | None]]) -> list[int]:
    """New first tasks sent to an ant at their job's start, without a READY row version: (execution,
    task type, method, allow_failure, ant id, the ant's incarnation) each, attempt 1; returns
    their ids. A task created READY and dispatched in the same pass ends the same, in two writes."""
    now = timezone.now()
    ids = fastsql.insert_rows(
        TaskExecution, ("organization_id", "job_execution_id", "task_type", "method", "allow_failure", "task_order",
                        "task_state", "ant_id", "ant_started_at", "attempt", "started_at", "updated_at"),
        [(execution.organization_id, execution.pk, task_type, method, allow_failure, 0, TaskState.STARTED, ant_id,
          ant_started_at, 1, now, now)
         for execution, task_type, method, allow_failure, ant_id, ant_started_at in rows],
    )  # fmt: skip
    for task_id, (execution, task_type, _, _, ant_id, _) in zip(ids, rows, strict=True):
        _task_event(task_id, execution.job_request_id, TaskState.STARTED, task_type=task_type, ant_id=ant_id)
    return ids


def tasks_dispatch(ant_id: str, tasks: dict[int, int], ant_started_at: float | None = None) -> dict[int, int]:
    """READY -> STARTED on ``ant_id`` (the incarnation started at ``ant_started_at``) for tasks
    (id -> request id); returns id -> new attempt of those won."""
    now = timezone.now()
    rows = _update_returning(
        TaskExecution, tasks, {"task_state": TaskState.STARTED, "ant_id": ant_id, "updated_at": now, "started_at": now,
                               "ant_started_at": ant_started_at},
        where={"task_state": sources("task", TaskState.STARTED, [TaskState.READY])}, increment=("attempt",),
        returning=("id", "attempt"),
    )  # fmt: skip
    for task_id, _ in rows:
        _task_event(task_id, tasks[task_id], TaskState.STARTED, ant_id=ant_id)
    return dict(rows)


def jobs_executing(executions: dict[int, int]) -> list[int]:
    """READY -> EXECUTING for requests (id -> execution id) whose first task went to an ant;
    returns the request ids won."""
    now = timezone.now()
    _update_returning(
        JobExecution, executions.values(), {"job_state": JobState.EXECUTING, "updated_at": now},
        where={"job_state": sources("execution", JobState.EXECUTING, [JobState.READY])},
    )  # fmt: skip
    rows = _update_returning(
        JobRequest, executions, {"job_state": JobState.EXECUTING, "updated_at": now},
        where={"job_state": sources("request", JobState.EXECUTING, [JobState.READY])},
    )  # fmt: skip
    for (request_id,) in rows:
        _job_event(request_id, JobState.EXECUTING)
    return [request_id for (request_id,) in rows]


def tasks_executing(tasks: list[tuple[int, int, int]]) -> int:
    """STARTED -> EXECUTING for (task id, request id, attempt) each: one statement per attempt
    number (nearly always one)."""
    by_attempt: dict[int, dict[int, int]] = {}
    for task_id, request_id, attempt in tasks:
        by_attempt.setdefault(attempt, {})[task_id] = request_id
    won = 0
    now = timezone.now()
    for attempt, ids in by_attempt.items():
        rows = _update_returning(
            TaskExecution, ids, {"task_state": TaskState.EXECUTING, "updated_at": now},
            where={"task_state": sources("task", TaskState.EXECUTING, [TaskState.STARTED]), "attempt": attempt},
        )  # fmt: skip
        for (task_id,) in rows:
            _task_event(task_id, ids[task_id], TaskState.EXECUTING)
        won += len(rows)
    return won


FINISH_FIELDS = ("task_state", "exit_code", "exit_message", "error_code", "error_message", "failed_command",
                 "context", "stdout", "cost_factor", "cpu_secs", "ended_at", "updated_at")  # fmt: skip


def tasks_finish(
    finished: list[tuple[int, int, int, dict[str, Any]]],
    known: dict[int, tuple[str, str, datetime | None, int]],
) -> None:
    """Running -> final for (task id, request id, attempt, FINISH_FIELDS values) each, in one
    executemany. The caller has locked the rows and checked their state and attempt (the
    condition stays as a guard); ``known`` gives each task's (task type, method, started at,
    definition id), which the outbound hooks then need not read again."""
    if not finished:
        return
    for state in {values["task_state"] for _, _, _, values in finished}:
        sources("task", state, RUNNING_TASK)  # refused before anything is written
    running = tuple(_values(RUNNING_TASK))
    fastsql.update_each(
        TaskExecution, ("id", "attempt", "task_state"), FINISH_FIELDS,
        [(*(values[name] for name in FINISH_FIELDS), task_id, attempt, running) for task_id, _, attempt, values in finished],
    )  # fmt: skip
    ended: list[outbound.EndedTask] = []
    for task_id, request_id, _, values in finished:
        _task_event(task_id, request_id, values["task_state"], exit_code=values["exit_code"])
        task_type, method, started, definition_id = known[task_id]
        state, ended_at = values["task_state"], values["ended_at"]
        ended.append((task_id, task_type, method, state, started, ended_at, request_id, definition_id))
    transaction.on_commit(lambda: outbound.tasks_ended_known(ended))


def jobs_finish(
    executions: dict[int, int], state: JobState, *, error_code: str = "", error_message: str = "",
    exit_code: str = "", from_states: Iterable[str] = JOB_RUNNING,
) -> list[int]:  # fmt: skip
    """Running -> COMPLETED / FAILED / FILTERED for requests (id -> execution id); returns the
    request ids won."""
    now = timezone.now()
    # a template may have put a secret in the message (a templated fork_job_type, say)
    error_message = redact_errors(executions, {"error_message": error_message[:10_000]})["error_message"]
    rows = _update_returning(
        JobRequest, executions, {"job_state": state, "error_code": error_code, "error_message": error_message,
                                 "state_message": "", "updated_at": now},
        where={"job_state": sources("request", state, from_states)},
        returning=("id", "organization_id", "job_type", "created_at", "job_definition_id"),
    )  # fmt: skip
    won = [request_id for request_id, *_ in rows]
    # every source of a final state is an open one: each row won is one more finished request
    finished_counts.add([(org_id, job_type, state, created) for _, org_id, job_type, created, _ in rows])
    if won:
        # one statement compiled by hand: the ORM's compile of the sum's subquery was about a tenth
        # of a standalone queen's time
        _update_returning(
            JobExecution, [executions[r] for r in won],
            {"job_state": state, "error_code": error_code, "error_message": error_message, "exit_code": exit_code,
             "ended_at": now, "updated_at": now},
            where={"job_state": sources("execution", state)}, sums={"cpu_secs": _TASKS_CPU_SECS},
        )  # fmt: skip
    for request_id in won:
        _job_event(request_id, state, error_code=error_code)
    if won:
        ended = [(request_id, definition_id) for request_id, *_, definition_id in rows]
        transaction.on_commit(lambda: outbound.jobs_ended_known(ended))
    return won
