"""Tasks the queen runs itself (no ant): FORK_JOB, AWAIT_FORKED_JOB, EXPIRE_ARTIFACTS, MANUAL (it
waits for reviews); a method it does not know fails."""

from django.db import transaction

from artifacts import services as artifact_services
from jobs.definition.model import TaskSpec
from jobs.domain import follow, forks, transitions
from jobs.domain.rules import QUEEN_ANT
from jobs.domain.specs import graph_spec, task_of
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.states import TaskState

AWAITING_METHODS = ("AWAIT_FORKED_JOB", "FORK_JOB")  # EXECUTING on the queen: waiting for children


def run(task: TaskExecution, request: JobRequest, execution: JobExecution, spec: TaskSpec) -> bool:
    """Run a READY task of a queen method (inside the caller's transaction); False when another
    queen took it first."""
    if spec.method == "MANUAL":
        # it holds no ant and no slot: the request waits for reviews (jobs/services/approvals.py)
        reason = f"waiting for approval of task {task.task_type}"
        return (
            transitions.task_await_approval(task.pk, request.pk, execution.pk, task.attempt, reason)
            is not None
        )
    attempt = transitions.task_dispatch(task.pk, request.pk, QUEEN_ANT, task.attempt)
    if attempt is None:
        return False
    transitions.job_executing(request.pk, execution.pk)
    if spec.method == "FORK_JOB":
        outcome = forks.fork(request, task, spec)
        if outcome.state == TaskState.COMPLETED and forks.waits_for_child(spec):
            # fork and await in one step: it stays EXECUTING; check_awaits() ends it with its child
            forks.hold_child(task, outcome.context)
            transitions.task_executing(task.pk, request.pk, attempt)
        else:
            done(task, request, execution, outcome)
    elif spec.method == "EXPIRE_ARTIFACTS":
        expired = artifact_services.artifacts_expire(organization_id=request.organization_id)
        done(task, request, execution,
             forks.Outcome(TaskState.COMPLETED, exit_code="0", context={"ExpiredArtifacts": expired}))  # fmt: skip
    elif spec.method == "AWAIT_FORKED_JOB":
        # it stays EXECUTING; check_awaits() finishes it when the children have ended
        transitions.task_executing(task.pk, request.pk, attempt)
    else:
        message = f"method {spec.method} is not supported by this queen"
        done(task, request, execution, forks.Outcome(TaskState.FAILED, error_code="ERR_UNSUPPORTED_METHOD",
                                                     error_message=message))  # fmt: skip
    return True


def done(task: TaskExecution, request: JobRequest, execution: JobExecution, outcome: forks.Outcome) -> None:
    if not transitions.task_finish(task.pk, request.pk, None, outcome.state, exit_code=outcome.exit_code,
                                   error_code=outcome.error_code, error_message=outcome.error_message,
                                   context=outcome.context):  # fmt: skip
        return
    if outcome.context:
        follow.merge_context(execution, outcome.context)
    graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
    follow.after_end(task, request, execution, graph, outcome.state, outcome.exit_code or None,
                     outcome.error_code, outcome.error_message)  # fmt: skip


def check_awaits() -> int:
    """Finish AWAIT_FORKED_JOB tasks whose children have all ended, and FORK_JOB tasks that wait
    for their child (``sub_workflow.wait_for_completion``) once it has ended."""
    finished = 0
    for task in TaskExecution.objects.filter(
        task_state=TaskState.EXECUTING, method__in=AWAITING_METHODS, ant_id=QUEEN_ANT, fan_out_of=""
    ).select_related("job_execution__job_request__job_definition"):
        execution = task.job_execution
        request = execution.job_request
        graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
        spec = task_of(graph, task.task_type)
        if spec is None or spec.fan_out:  # a job fan-out's step and children: fanouts.check_children
            continue
        if spec.method == "FORK_JOB":
            outcome = forks.await_child(task, spec)
        else:
            outcome = forks.await_forked(task, spec)
            if outcome is not None:
                outcome.context.update(forks.promoted_from_forks(task, spec, graph))
        if outcome is not None:
            with transaction.atomic():
                done(task, request, execution, outcome)
            finished += 1
    return finished
