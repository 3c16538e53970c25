"""What follows a task's end, as one pure function: ``decide(snapshot) -> Decision``.

The queen reads a ``TaskEnd`` snapshot (the finished task, its job's graph and counters, the error
rule its failure matched) and carries out the ``Decision`` through ``jobs.domain.transitions``;
every rule about next tasks, retries, repeats, restarts, pauses, ``always_run`` tasks, job
retries and the job's end lives here and in ``dag.next_step`` (the reference's next-task
lookup), nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from . import dag
from .error_rules import SUSPEND_JOB, ErrorRule, job_retry_limit, task_retry_limit
from .model import JobSpec, TaskSpec
from .retries import retry_delay

COMPLETED, FAILED, SKIPPED, CANCELLED = dag.COMPLETED, dag.FAILED, "SKIPPED", "CANCELLED"
# A cancelled task (a user cut it) is never run again by its own routes: no retry, repeat or restart.
_RERUNS = frozenset({"repeat", "restart_task", "restart_job"})
# Job states in which a task's end still decides something (a paused job's task may finish).
LIVE_JOB_STATES = frozenset({"READY", "STARTED", "EXECUTING", "PAUSED"})
# A forced restart (RESTART_JOB) is allowed at least this many times whatever `retry` says.
FORCED_RESTARTS = 3


# -- the snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskEnd:
    """What the queen knows when a task has ended.

    ``state``: COMPLETED / FAILED / SKIPPED as the ant (or the queen) reported it; a skipped or
    reused task is passed as COMPLETED; CANCELLED when a user cancelled the running task (it
    follows its failure path, but is never retried). ``executed`` gives the task types of this execution that
    have run (not READY); it is called only when the job's path ends in failure, so the plain
    path never pays for the query behind it. ``rand`` is the draw (0..1) a backoff's jitter uses.
    """

    task: TaskSpec
    graph: JobSpec
    state: str
    exit_code: str | None = None
    error_code: str = ""
    error_message: str = ""
    task_retried: int = 0
    job_state: str = "EXECUTING"
    job_retried: int = 0
    failed_task_type: str = ""  # the execution's first failed task, when it has one
    failure_code: str = ""  # ... and the error recorded with it
    failure_message: str = ""
    rule: ErrorRule | None = None
    executed: Callable[[], Collection[str]] = field(default=lambda: ())
    rand: float = 0.5


# -- what to do -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ignore:
    """The job is no longer running (cancelled, finished): nothing follows."""


@dataclass(frozen=True)
class RunTask:
    """Make ``task_type`` READY: the next task, or an ``always_run`` task of a failed job."""

    task_type: str


@dataclass(frozen=True)
class RetryTask:
    """The failed task runs again after ``delay_secs`` (its retry count goes up)."""

    delay_secs: float
    reason: str


@dataclass(frozen=True)
class RepeatTask:
    """The finished task runs again after ``delay_secs``: an EXECUTING target (a repeat, not
    counted) or RESTART_TASK (counted as a retry)."""

    delay_secs: float
    count_retry: bool
    reason: str


@dataclass(frozen=True)
class SuspendJob:
    """An error rule suspends the job: the failed task is READY again (not counted) and the job
    waits PAUSED for a person to resume it."""

    task_reason: str
    job_reason: str


@dataclass(frozen=True)
class PauseJob:
    """PAUSE_JOB: the job pauses ``resume_after_secs``, then goes on with ``then`` (if any)."""

    reason: str
    resume_after_secs: float
    then: str | None


@dataclass(frozen=True)
class RetryJob:
    """The job runs again as a new execution after ``delay_secs`` (``hard``: every task)."""

    delay_secs: float
    hard: bool
    reason: str


@dataclass(frozen=True)
class EndJob:
    state: str  # COMPLETED or FAILED
    error_code: str = ""
    error_message: str = ""


Action = Ignore | RunTask | RetryTask | RepeatTask | SuspendJob | PauseJob | RetryJob | EndJob


@dataclass(frozen=True)
class Failure:
    """The execution's first failure, to record before the action (later ones keep it)."""

    task_type: str
    error_code: str
    error_message: str


@dataclass(frozen=True)
class Decision:
    """``action`` to carry out. ``task_state`` / ``error_code``: the finished task's state and
    error code (``override``: an exit-code entry changed them, the row is updated first);
    ``failure``: the execution's first failure to record."""

    action: Action
    task_state: str
    error_code: str = ""
    override: bool = False
    failure: Failure | None = None


# -- the rules ------------------------------------------------------------------------------------


def decide(end: TaskEnd) -> Decision:
    """What follows ``end`` (REFERENCE.md "Next-task lookup", retries and the job's end)."""
    if end.job_state not in LIVE_JOB_STATES:
        return Decision(Ignore(), end.state, end.error_code)
    if end.state == CANCELLED:
        return _cancelled(end)
    step = dag.next_step(end.task, end.state, end.exit_code)
    # a repeat (EXECUTING target) keeps the attempt's own state: the task is requeued from it
    state = (
        end.state if step.kind == "repeat" or step.task_state not in (COMPLETED, FAILED) else step.task_state
    )
    override = state != end.state and end.state != SKIPPED
    error_code = step.error_code or end.error_code
    failed = state == FAILED
    rule = end.rule if failed else None
    no_retry = step.no_retry or (rule is not None and rule.no_retry)

    def made(action: Action, failure: Failure | None = None) -> Decision:
        return Decision(action, state, error_code, override, failure)

    task = end.task
    if rule is not None and rule.action == SUSPEND_JOB and step.kind in ("task", "end"):
        return made(SuspendJob(f"suspended by error code {rule.error_code}",
                               f"suspended: {task.task_type} failed with {rule.error_code}"))  # fmt: skip
    if (
        failed
        and step.kind in ("task", "end")
        and not no_retry
        and end.task_retried < task_retry_limit(task.retry or 0, rule)
    ):
        delay = retry_delay(task.retry_backoff_policy, task.delay_between_retries, end.task_retried,
                            lambda: end.rand)  # fmt: skip
        return made(RetryTask(delay, f"retry {end.task_retried + 1} of {task.retry}"))
    if step.kind == "task":
        return made(RunTask(step.task_type or ""))
    if step.kind in ("repeat", "restart_task"):
        return made(
            RepeatTask(float(task.delay_between_retries or 0), step.kind == "restart_task", step.kind)
        )
    if step.kind == "restart_job":
        restart = _job_retry(end, "RESTART_JOB", force=True, rule=None)
        assert restart is not None, "a forced retry is a retry or the job's end"
        return made(restart)
    if step.kind == "pause_job":
        then = task.on_completed if task.on_completed and _has(end.graph, task.on_completed) else None
        return made(PauseJob(f"paused by task {task.task_type}", float(task.pause_time or 0), then))
    # the end of the path
    if not end.failed_task_type and step.job_state != FAILED:
        return made(EndJob(COMPLETED))
    return _failed_path(end, made, error_code, no_retry, rule)


def _cancelled(end: TaskEnd) -> Decision:
    """A task cancelled by a user follows the path a failed task would (``on_failed``, or an
    ``allow_failure`` task's ``on_completed``, or the job's failure with its always_run tasks);
    it stays CANCELLED and nothing runs it again: no task retry, repeat, restart or job retry."""
    step = dag.next_step(end.task, FAILED)  # no exit code: an ant's answer does not route it
    error_code = end.error_code or "ERR_TASK_CANCELLED"

    def made(action: Action, failure: Failure | None = None) -> Decision:
        return Decision(action, CANCELLED, error_code, False, failure)

    if step.kind == "task":
        return made(RunTask(step.task_type or ""))
    if step.kind == "pause_job":
        task = end.task
        then = task.on_completed if task.on_completed and _has(end.graph, task.on_completed) else None
        return made(PauseJob(f"paused by task {task.task_type}", float(task.pause_time or 0), then))
    if step.kind == "end" and not end.failed_task_type and step.job_state == COMPLETED:
        return made(EndJob(COMPLETED))  # allow_failure
    # the end of the path, or a route that would run it again (_RERUNS): the job has failed
    assert step.kind in _RERUNS or step.kind == "end", step.kind
    return _failed_path(end, made, error_code, True, None)


def _failed_path(
    end: TaskEnd, made: Callable[[Action, Failure | None], Decision], error_code: str, no_retry: bool,
    rule: ErrorRule | None,
) -> Decision:  # fmt: skip
    """The job has failed: its always_run tasks not yet run go first, then a job retry, else
    the job ends FAILED with its first failure's error."""
    failure = None
    failed_task, code, message = end.failed_task_type, end.failure_code, end.failure_message
    if not failed_task:
        failed_task, code, message = end.task.task_type, error_code or "ERR_TASK_FAILED", end.error_message
        failure = Failure(failed_task, code, message[:10_000])
    remaining = dag.always_run_tasks(end.graph, set(end.executed()))
    if remaining:
        return made(RunTask(remaining[0]), failure)
    if not no_retry:
        retry = _job_retry(end, "job retry", force=False, rule=rule)
        if isinstance(retry, RetryJob):
            return made(retry, failure)
    return made(EndJob(FAILED, code or "ERR_TASK_FAILED", message or f"task {failed_task} failed"), failure)


def _job_retry(end: TaskEnd, why: str, *, force: bool, rule: ErrorRule | None) -> RetryJob | EndJob | None:
    """A job retry (``force``: RESTART_JOB, allowed a few times even without ``retry``), or None
    when none is left (``force``: the job ends with ERR_RESTART_LIMIT)."""
    graph, done = end.graph, end.job_retried
    limit = job_retry_limit(graph.retry or 0, rule)
    if done >= limit and not (force and done < max(limit, FORCED_RESTARTS)):
        return EndJob(FAILED, "ERR_RESTART_LIMIT", f"{why}: restarted {done} times") if force else None
    delay = retry_delay(graph.retry_backoff_policy, graph.delay_between_retries, done, lambda: end.rand)
    every = graph.hard_reset_after_retries or 0
    hard = force or bool(every and (done + 1) % every == 0)
    return RetryJob(delay, hard, f"{why} {done + 1}")


def _has(graph: JobSpec, task_type: str) -> bool:
    return any(t.task_type == task_type for t in graph.tasks)
