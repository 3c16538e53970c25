"""FORK_JOB and AWAIT_FORKED_JOB: tasks the queen runs itself by starting and watching child jobs."""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from jobs.definition.model import TaskSpec
from jobs.models import JobRequest, TaskExecution
from jobs.states import JOB_TERMINAL, JobState, TaskState

FORKED_ID = "ForkedJobID"


@dataclass
class Outcome:
    state: TaskState
    exit_code: str = ""
    error_code: str = ""
    error_message: str = ""
    context: dict[str, Any] = field(default_factory=dict)


def fork(request: JobRequest, task: TaskExecution, spec: TaskSpec) -> Outcome:
    """Start the child request: ``fork_job_type`` (``fork_job_version``) with the task's
    variables as params, linked to its parent."""
    from jobs.services.requests import request_submit  # services import the queen's events

    params = {str(k): v for k, v in (spec.variables or {}).items()}
    try:
        child = request_submit(
            org_id=request.organization_id, user=request.user, job_type=spec.fork_job_type or "",
            job_version=spec.fork_job_version or "", params=params, job_priority=request.job_priority,
            job_group=request.job_group, parent=request,
        )  # fmt: skip
    except ValidationError as exc:
        return Outcome(TaskState.FAILED, exit_code="1", error_code="ERR_FORK_JOB",
                       error_message="; ".join(exc.messages))  # fmt: skip
    context = {FORKED_ID: child.pk, f"{task.task_type}_{FORKED_ID}": child.pk}
    return Outcome(TaskState.COMPLETED, exit_code="0", context=context)


def await_forked(task: TaskExecution, spec: TaskSpec) -> Outcome | None:
    """None while a child named in ``await_forked_tasks`` still runs; then COMPLETED, or FAILED
    when any child did not complete."""
    forks = TaskExecution.objects.filter(
        job_execution_id=task.job_execution_id, task_type__in=spec.await_forked_tasks
    ).values_list("task_type", "context")
    child_ids: dict[str, Any] = {t: (ctx or {}).get(FORKED_ID) for t, ctx in forks}
    missing = [t for t in spec.await_forked_tasks if not child_ids.get(t)]
    if missing:
        return Outcome(TaskState.FAILED, exit_code="1", error_code="ERR_AWAIT_FORKED_JOB",
                       error_message=f"no forked job from task(s) {', '.join(missing)}")  # fmt: skip
    states = dict(JobRequest.objects.filter(pk__in=list(child_ids.values())).values_list("pk", "job_state"))
    if any(states.get(cid) not in JOB_TERMINAL for cid in child_ids.values()):
        return None
    failed = {t: states[cid] for t, cid in child_ids.items() if states[cid] != JobState.COMPLETED}
    context = {f"{t}_ForkedJobState": states[cid] for t, cid in child_ids.items()}
    if failed:
        detail = ", ".join(f"{t} -> job {child_ids[t]} {s}" for t, s in failed.items())
        return Outcome(TaskState.FAILED, exit_code="1", error_code="ERR_FORKED_JOB_FAILED",
                       error_message=f"forked jobs did not complete: {detail}", context=context)  # fmt: skip
    return Outcome(TaskState.COMPLETED, exit_code="0", context=context)
