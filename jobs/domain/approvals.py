"""Carry out manual approvals on the queen's side: end a waiting MANUAL task as its reviews (or its
SLA) decided, and fire the SLA action on time. The rules are the pure ``jobs.definition.approvals``;
every state change goes through ``transitions``; everything lives in the database (the reviews,
the wait's start, whether it escalated), so a restarted queen carries on where the other stopped.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.definition.approvals import (
    APPROVED,
    AUTO_APPROVE,
    AUTO_REJECT,
    ESCALATE,
    REJECTED,
    ApprovalPolicy,
    PolicyError,
    on_deadline,
)
from jobs.definition.model import TaskSpec
from jobs.domain import follow, transitions
from jobs.domain.specs import graph_of, task_of
from jobs.models import ApprovalReview, TaskExecution
from jobs.outbound import runner
from jobs.states import TaskState

log = logging.getLogger(__name__)

# what the queen records when the SLA deadline passes (a review row without a user)
AUTO_APPROVED, AUTO_REJECTED, ESCALATED = "AUTO_APPROVED", "AUTO_REJECTED", "ESCALATED"


def policy_of(spec: TaskSpec | None) -> ApprovalPolicy:
    """The task's policy (validated at upload; a definition stored before that falls back to the
    defaults rather than fail the wait)."""
    try:
        return ApprovalPolicy.parse(spec.approval_policy if spec else None)
    except PolicyError:
        return ApprovalPolicy()


def waiting_task(task_id: int) -> TaskExecution | None:
    """The task row, locked (reviews of one task and the SLA check take turns), with its
    execution, request and definition; None when it no longer waits."""
    task = (
        TaskExecution.objects.select_for_update(of=("self",))
        .select_related("job_execution__job_request__job_definition")
        .filter(pk=task_id, task_state=TaskState.MANUAL_APPROVAL_REQUIRED)
        .first()
    )
    return task


def conclude(task: TaskExecution, outcome: str, message: str) -> bool:
    """End the waiting ``task`` (locked by the caller, inside its transaction) with the exit code
    ``outcome`` (APPROVED or REJECTED) and follow its definition: COMPLETED when approved, or
    when ``on_exit_code`` routes REJECTED elsewhere; FAILED otherwise. False when it was decided
    already."""
    execution = task.job_execution
    request = execution.job_request
    graph = graph_of(request.job_definition_id)
    spec = task_of(graph, task.task_type)
    routed = spec is not None and outcome in spec.on_exit_code
    state = TaskState.COMPLETED if outcome == APPROVED or routed else TaskState.FAILED
    error = (
        {}
        if state == TaskState.COMPLETED
        else {"error_code": "ERR_APPROVAL_REJECTED", "error_message": message}
    )
    if not transitions.task_approval_decided(task.pk, request.pk, execution.pk, task.attempt, state,
                                             exit_code=outcome, exit_message=message[:10_000], **error):  # fmt: skip
        return False
    follow.after_end(task, request, execution, graph, state, outcome, error.get("error_code", ""),
                     error.get("error_message", ""))  # fmt: skip
    return True


def check_deadlines() -> int:
    """Fire the SLA action of waiting MANUAL tasks past their deadline: approve, reject, or send the
    escalation mail once (the task keeps waiting). Returns how many acted."""
    now = timezone.now()
    acted = 0
    waits = TaskExecution.objects.filter(task_state=TaskState.MANUAL_APPROVAL_REQUIRED).values_list(
        "pk", "task_type", "attempt", "started_at", "job_execution__job_request__job_definition_id"
    )
    for task_id, task_type, attempt, started_at, definition_id in waits:
        policy = policy_of(task_of(graph_of(definition_id), task_type))
        action = on_deadline(policy, (now - (started_at or now)).total_seconds())
        if not action:
            continue
        if (
            action == ESCALATE
            and ApprovalReview.objects.filter(
                task_execution_id=task_id, attempt=attempt, user__isnull=True
            ).exists()
        ):
            continue  # escalated once already
        if _act(task_id, attempt, action, policy):
            acted += 1
    return acted


def _act(task_id: int, attempt: int, action: str, policy: ApprovalPolicy) -> bool:
    with transaction.atomic():
        task = waiting_task(task_id)
        if task is None or task.attempt != attempt:
            return False
        status = {AUTO_APPROVE: AUTO_APPROVED, AUTO_REJECT: AUTO_REJECTED}.get(action, ESCALATED)
        secs = f"{policy.sla_deadline_secs:g}s"
        comments = (
            f"no decision within the SLA deadline ({secs}): escalated"
            if action == ESCALATE else f"no decision within the SLA deadline ({secs})"
        )  # fmt: skip
        try:
            with transaction.atomic():  # the constraint keeps it once per wait, whichever queen
                review = _queen_review(task, status, comments)
        except IntegrityError:
            return False
        if action == ESCALATE:
            if policy.escalation_recipients:
                transaction.on_commit(
                    lambda: runner.enqueue("jobs.tasks.send_escalation", review_id=review.pk, attempt=1)
                )
            log.info("approval of task %s escalated after %s", task.pk, secs)
            return True
        outcome = APPROVED if action == AUTO_APPROVE else REJECTED
        return conclude(task, outcome, f"{comments}: {status}")


def _queen_review(task: TaskExecution, status: str, comments: str) -> ApprovalReview:
    execution = task.job_execution
    return ApprovalReview.objects.create(
        organization_id=task.organization_id, job_request_id=execution.job_request_id, job_execution=execution,
        task_execution=task, task_type=task.task_type, attempt=task.attempt, status=status, comments=comments,
    )  # fmt: skip
