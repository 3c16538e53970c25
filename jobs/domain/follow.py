"""Carry out what follows a task's end: build the snapshot the pure policy
(``jobs.definition.policy.decide``) reads, and apply its decision through
``jobs.domain.transitions``. No rule lives here: only how each decision is written."""

import random
from datetime import timedelta
from typing import Any

from django.utils import timezone

from jobs.definition import policy
from jobs.definition.error_rules import ErrorRule
from jobs.definition.model import JobSpec, TaskSpec
from jobs.domain import transitions
from jobs.domain.rules import JOB_RUNNING_VALUES, method_of
from jobs.domain.specs import task_of
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.states import JobState, TaskState

# The end of a job may come while it is paused (a task on an ant finished after the pause).
ENDS_FROM = [*JOB_RUNNING_VALUES, JobState.PAUSED]
REPEAT_FROM = [TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED]


def merge_context(execution: JobExecution, values: dict[str, Any]) -> None:
    """Add a finished task's context (and the job context it set) to its execution's."""
    execution = JobExecution.objects.select_for_update().get(pk=execution.pk)
    JobExecution.objects.filter(pk=execution.pk).update(context={**execution.context, **values})


def executed_types(execution_id: int) -> frozenset[str]:
    """Task types of the execution that have run (not READY): which always_run tasks are left."""
    return frozenset(
        TaskExecution.objects.filter(job_execution_id=execution_id)
        .exclude(task_state=TaskState.READY)
        .values_list("task_type", flat=True)
    )


def snapshot(
    task: TaskExecution, request: JobRequest, execution: JobExecution, graph: JobSpec, spec: TaskSpec, state: str,
    exit_code: str | None, error_code: str = "", error_message: str = "", rule: ErrorRule | None = None,
) -> policy.TaskEnd:  # fmt: skip
    """The snapshot of a task's end from rows as loaded (the caller has read them in this
    transaction)."""
    return policy.TaskEnd(
        task=spec, graph=graph, state=str(state), exit_code=exit_code, error_code=error_code,
        error_message=error_message, task_retried=task.retried, job_state=str(request.job_state),
        job_retried=request.retried, failed_task_type=execution.failed_task_type or "",
        failure_code=execution.error_code or "", failure_message=execution.error_message or "", rule=rule,
        executed=lambda: executed_types(execution.pk), rand=random.random(),
    )  # fmt: skip


def after_end(
    task: TaskExecution, request: JobRequest, execution: JobExecution, graph: JobSpec, state: TaskState,
    exit_code: str | None, error_code: str = "", error_message: str = "", rule: ErrorRule | None = None,
) -> None:  # fmt: skip
    """What follows a task that ended off the answers' path (a queen task, a skipped or reused
    task, a timeout): the rows are read again, then decided and carried out (inside the
    caller's transaction)."""
    request.refresh_from_db(fields=["job_state", "retried", "hard_reset"])
    execution.refresh_from_db(fields=["failed_task_type", "error_code", "error_message"])
    if task.fan_out_of:  # a fan-out instance: its step goes on (fanouts imports this module)
        from jobs.domain import fanouts

        step = fanouts.instance_ended(task, request, execution, graph, state, exit_code, error_code,
                                      error_message, rule)  # fmt: skip
        if step:
            fanouts.progress(execution.pk, request, execution, graph, step)
        return
    spec = task_of(graph, task.task_type)
    assert spec is not None, f"validated graphs only name known tasks ({task.task_type})"
    decision = policy.decide(snapshot(task, request, execution, graph, spec, state, exit_code, error_code,
                                      error_message, rule))  # fmt: skip
    carry_out(decision, task, request.pk, execution, graph)


def carry_out(
    decision: policy.Decision, task: TaskExecution, request_id: int, execution: JobExecution, graph: JobSpec
) -> None:
    """Write ``decision`` about the finished ``task`` (inside the caller's transaction)."""
    action = decision.action
    if isinstance(action, policy.Ignore):
        return
    if decision.override:
        transitions.task_override(task.pk, TaskState(decision.task_state), decision.error_code)
    if decision.failure is not None:
        failure = decision.failure
        transitions.execution_failure(
            execution.pk, failure.task_type, failure.error_code, failure.error_message
        )
        execution.failed_task_type = failure.task_type
    now = timezone.now()
    if isinstance(action, policy.RunTask):
        ready_tasks([(execution, _task(graph, action.task_type))])
    elif isinstance(action, policy.RetryTask):
        transitions.task_requeue(task.pk, request_id, from_states=[TaskState.FAILED],
                                 not_before=now + timedelta(seconds=action.delay_secs), count_retry=True,
                                 reason=action.reason)  # fmt: skip
    elif isinstance(action, policy.RepeatTask):
        transitions.task_requeue(task.pk, request_id, from_states=REPEAT_FROM,
                                 not_before=now + timedelta(seconds=action.delay_secs),
                                 count_retry=action.count_retry, reason=action.reason)  # fmt: skip
    elif isinstance(action, policy.SuspendJob):
        # the job waits for a person; when resumed, the failed task runs again
        transitions.task_requeue(task.pk, request_id, from_states=[TaskState.FAILED], not_before=None,
                                 count_retry=False, reason=action.task_reason)  # fmt: skip
        transitions.job_pause(request_id, action.job_reason)
    elif isinstance(action, policy.PauseJob):
        transitions.job_pause(
            request_id, action.reason, resume_at=now + timedelta(seconds=action.resume_after_secs)
        )
        if action.then:
            ready_tasks([(execution, _task(graph, action.then))])
    elif isinstance(action, policy.RetryJob):
        transitions.job_requeue(request_id, execution.pk, now + timedelta(seconds=action.delay_secs), action.reason,
                                hard=action.hard)  # fmt: skip
    elif isinstance(action, policy.EndJob):
        transitions.job_finish(request_id, execution.pk, JobState(action.state), error_code=action.error_code,
                               error_message=action.error_message, from_states=ENDS_FROM)  # fmt: skip


def _task(graph: JobSpec, task_type: str) -> TaskSpec:
    spec = task_of(graph, task_type)
    assert spec is not None, f"validated graphs only name known tasks ({task_type})"
    return spec


def ready_tasks(nexts: list[tuple[JobExecution, TaskSpec]]) -> None:
    """The next tasks READY: one INSERT for those the execution has not run yet; a revisit (a graph
    may loop back) makes the finished row READY again."""
    if not nexts:
        return
    existing: dict[int, set[str]] = {}
    counts: dict[int, int] = {}
    for execution_id, task_type in TaskExecution.objects.filter(
        job_execution_id__in={execution.pk for execution, _ in nexts}
    ).values_list("job_execution_id", "task_type"):
        existing.setdefault(execution_id, set()).add(task_type)
        counts[execution_id] = counts.get(execution_id, 0) + 1
    new: list[tuple[JobExecution, str, str, bool, int]] = []
    for execution, nxt in nexts:
        if nxt.task_type in existing.get(execution.pk, set()):
            transitions.task_ready(
                execution, nxt.task_type, method_of(nxt), allow_failure=bool(nxt.allow_failure)
            )
        else:
            order = counts.get(execution.pk, 0)
            new.append((execution, nxt.task_type, method_of(nxt), bool(nxt.allow_failure), order))
            existing.setdefault(execution.pk, set()).add(nxt.task_type)
            counts[execution.pk] = order + 1
    transitions.tasks_create_ready(new)
