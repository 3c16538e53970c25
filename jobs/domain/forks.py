"""FORK_JOB and AWAIT_FORKED_JOB: tasks the queen runs itself by starting and watching child jobs.

A FORK_JOB with ``sub_workflow`` (``jobs.definition.sub_workflow``) forwards only its
``input_params``, rendered over the parent's data without secrets; its child's context comes back
(``output_variables``) when an AWAIT_FORKED_JOB, or the task itself with ``wait_for_completion``,
sees the child end."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from jobs.definition.errors import DefinitionError, TemplateError
from jobs.definition.model import JobSpec, TaskSpec
from jobs.definition.sub_workflow import SubWorkflow, child_params, promoted
from jobs.models import JobRequest, TaskExecution
from jobs.states import JOB_TERMINAL, JobState, TaskState

FORKED_ID = "ForkedJobID"
FORKED_STATE = "ForkedJobState"


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
    if spec.sub_workflow:  # only its input_params go to the child
        try:
            params = sub_workflow_params(request, task, spec)
        except (DefinitionError, TemplateError) as exc:
            return Outcome(TaskState.FAILED, exit_code="1", error_code="ERR_FORK_JOB",
                           error_message=f"sub_workflow.input_params: {exc}")  # fmt: skip
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


def sub_workflow_of(spec: TaskSpec) -> SubWorkflow | None:
    """The task's ``sub_workflow`` (validated at upload), or None."""
    return SubWorkflow.parse(spec.sub_workflow) if spec.sub_workflow else None


def waits_for_child(spec: TaskSpec) -> bool:
    """A FORK_JOB that awaits its child itself (``sub_workflow.wait_for_completion``)."""
    sub = sub_workflow_of(spec)
    return sub is not None and sub.wait_for_completion


def sub_workflow_params(
    request: JobRequest, task: TaskExecution, spec: TaskSpec, extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The child's params: ``input_params`` as rendered with the task, or, when the request has
    secret configs or params, rendered again without them (a secret never reaches a child).
    ``extra``: more template data (a fan-out's item)."""
    from jobs.domain.context import secrets_and_values, template_data
    from jobs.domain.specs import definition_text, rendered_task

    sub = sub_workflow_of(spec)
    if sub is None or not sub.input_params:
        return {}
    values, secret_names = secrets_and_values(request)
    if secret_names or extra:
        plain = {k: v for k, v in values.items() if k not in secret_names}
        data = template_data(request, task.job_execution, plain)
        data.update(extra or {})
        again = rendered_task(definition_text(request.job_definition_id), data, task.task_type)
        sub = sub_workflow_of(again) if again is not None else None
        if sub is None:
            return {}
    return child_params(sub)


def hold_child(task: TaskExecution, context: dict[str, Any]) -> None:
    """A waiting FORK_JOB keeps its child's id on its row while it runs (its context, not its
    state), so any queen can finish it after a restart."""
    TaskExecution.objects.filter(pk=task.pk).update(context=context)


def _child_context(child: JobRequest) -> dict[str, Any]:
    execution = child.last_execution
    return {k: v for k, v in ((execution.context if execution else None) or {}).items() if isinstance(k, str)}


def await_child(task: TaskExecution, spec: TaskSpec) -> Outcome | None:
    """A waiting FORK_JOB: None while its child runs; then the child's outcome, with the child's
    context promoted as ``output_variables`` say (on failure too, for its on_failed path)."""
    child_id = (task.context or {}).get(FORKED_ID)
    child = (
        JobRequest.objects.filter(pk=child_id).select_related("last_execution").first() if child_id else None
    )
    if child is None:
        return Outcome(TaskState.FAILED, exit_code="1", error_code="ERR_FORK_JOB",
                       error_message=f"forked job {child_id} not found")  # fmt: skip
    if child.job_state not in JOB_TERMINAL:
        return None
    sub = sub_workflow_of(spec) or SubWorkflow()
    context = {
        **promoted(sub, _child_context(child)), FORKED_ID: child.pk, f"{task.task_type}_{FORKED_ID}": child.pk,
        f"{task.task_type}_{FORKED_STATE}": child.job_state,
    }  # fmt: skip
    if child.job_state != JobState.COMPLETED:
        why = f": {child.error_message}" if child.error_message else ""
        return Outcome(TaskState.FAILED, exit_code="1", error_code="ERR_FORKED_JOB_FAILED",
                       error_message=f"forked job {child.pk} {child.job_state}{why}"[:10_000], context=context)  # fmt: skip
    return Outcome(TaskState.COMPLETED, exit_code="0", context=context)


def promoted_from_forks(task: TaskExecution, spec: TaskSpec, graph: JobSpec) -> dict[str, Any]:
    """For an AWAIT_FORKED_JOB whose children have ended: the context of each child whose
    FORK_JOB task has a ``sub_workflow``, promoted as its ``output_variables`` say."""
    forks = TaskExecution.objects.filter(
        job_execution_id=task.job_execution_id, task_type__in=spec.await_forked_tasks
    ).values_list("task_type", "context")
    awaited = {t: (ctx or {}).get(FORKED_ID) for t, ctx in forks}
    subs = {t: sub_workflow_of(fork) for t in awaited if (fork := graph.task(t)) is not None}
    wanted = {t: cid for t, cid in awaited.items() if cid and subs.get(t) is not None}
    if not wanted:
        return {}
    children = JobRequest.objects.filter(pk__in=list(wanted.values())).select_related("last_execution")
    by_id = {c.pk: c for c in children}
    out: dict[str, Any] = {}
    for fork_task, child_id in wanted.items():
        child, sub = by_id.get(child_id), subs[fork_task]
        if child is not None and sub is not None:
            out.update(promoted(sub, _child_context(child)))
    return out
