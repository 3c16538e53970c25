"""People's reviews of MANUAL tasks: who may review, recording each decision with who and when,
and ending the task once the policy (``jobs.definition.approvals``) decides. The API and the web
page call these; the queen's side (``jobs.domain.approvals``) carries the outcome out."""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from jobs.definition.approvals import APPROVED, REJECTED, Review, decide, may_review
from jobs.domain import approvals as queen_approvals
from jobs.domain.specs import graph_of, task_of
from jobs.models import ApprovalReview, JobRequest, TaskExecution
from jobs.states import JobState, TaskState
from orgs import audit

STATUSES = (APPROVED, REJECTED)
MAX_COMMENTS = 10_000


class ReviewConflict(ValidationError):
    """The review clashes with what is recorded (the person reviewed already): a 409."""


@dataclass(frozen=True)
class Waiting:
    """A MANUAL task of a request waiting for reviews, and what its policy says of ``user``."""

    task: TaskExecution
    reviews: list[ApprovalReview]
    refusal: str  # why the user may not review it ("" when they may)


def _reviews(task: TaskExecution) -> list[ApprovalReview]:
    return list(ApprovalReview.objects.filter(task_execution=task, attempt=task.attempt).order_by("id"))


def _votes(rows: list[ApprovalReview]) -> list[Review]:
    return [Review(r.username, r.status, r.comments) for r in rows if r.user_id and r.status in STATUSES]


def _refusal(task: TaskExecution, rows: list[ApprovalReview], user: Any, requester: str) -> str:
    policy = queen_approvals.policy_of(task_of(graph_of(task.job_execution.job_request.job_definition_id),
                                               task.task_type))  # fmt: skip
    return may_review(policy, _votes(rows), reviewer=user.username, role=getattr(user, "role", ""),
                      requester=requester)  # fmt: skip


def _requester(request: JobRequest) -> str:
    return request.user.username if request.user_id and request.user else ""


def waiting_tasks(request: JobRequest, user: Any) -> list[Waiting]:
    """The request's tasks waiting for approval, their reviews so far, and whether ``user`` may
    review each (the request page's buttons)."""
    out: list[Waiting] = []
    for task in TaskExecution.objects.filter(
        job_execution__job_request=request, task_state=TaskState.MANUAL_APPROVAL_REQUIRED
    ).select_related("job_execution__job_request"):
        rows = _reviews(task)
        out.append(Waiting(task, rows, _refusal(task, rows, user, _requester(request))))
    return out


def awaiting_user(org_id: int, user: Any) -> list[Waiting]:
    """Waiting MANUAL tasks of the organization that ``user`` may review now ("waiting for my
    approval")."""
    out: list[Waiting] = []
    for request in (
        JobRequest.objects.filter(organization_id=org_id, job_state=JobState.MANUAL_APPROVAL_REQUIRED)
        .select_related("user")
        .order_by("id")[:500]
    ):
        out.extend(w for w in waiting_tasks(request, user) if not w.refusal)
    return out


def request_reviews(request: JobRequest) -> QuerySet[ApprovalReview]:
    return ApprovalReview.objects.filter(job_request=request).select_related("user").order_by("id")


def review(
    *, request: JobRequest, user: Any, execution_id: Any, task_type: Any, status: Any, comments: Any = ""
) -> ApprovalReview:
    """Record ``user``'s decision on the request's waiting MANUAL task and end the task when the
    policy decides. The task row is locked meanwhile, so two concurrent reviews take turns and
    only one of them can finish it. Raises ValidationError (ReviewConflict) naming the problem."""
    status = str(status or "").strip().upper()
    if status not in STATUSES:
        raise ValidationError(f"status: expected APPROVED or REJECTED, not {str(status)[:40]!r}")
    if not isinstance(comments, str):
        raise ValidationError("comments: expected text")
    if len(comments) > MAX_COMMENTS:
        raise ValidationError(f"comments: at most {MAX_COMMENTS} characters")
    if not isinstance(task_type, str) or not task_type:
        raise ValidationError("task_type: required")
    try:
        execution_pk = int(execution_id)
    except (TypeError, ValueError):
        raise ValidationError("execution_id: expected the id of the request's execution") from None
    if not request.executions.filter(pk=execution_pk).exists():
        raise ValidationError(f"execution_id: {execution_pk} is not an execution of job request {request.pk}")
    with transaction.atomic():
        found = TaskExecution.objects.filter(job_execution_id=execution_pk, task_type=task_type).first()
        if found is None:
            raise ValidationError(f"task_type: execution {execution_pk} has no task {task_type[:200]!r}")
        task = queen_approvals.waiting_task(found.pk)
        if task is None:
            raise ValidationError(
                f"task_type: task {task_type} is {found.task_state}, not waiting for approval"
            )
        rows = _reviews(task)
        refusal = _refusal(task, rows, user, _requester(request))
        if refusal:
            already = any(r.user_id == user.pk for r in rows)
            raise (ReviewConflict if already else ValidationError)(refusal)
        try:
            with transaction.atomic():
                recorded = ApprovalReview.objects.create(
                    organization_id=request.organization_id, job_request=request, job_execution_id=execution_pk,
                    task_execution=task, task_type=task.task_type, attempt=task.attempt, user=user,
                    username=user.username, status=status, comments=comments,
                )  # fmt: skip
        except IntegrityError:
            raise ReviewConflict(f"{user.username} has already reviewed this task") from None
        policy = queen_approvals.policy_of(task_of(graph_of(request.job_definition_id), task.task_type))
        outcome = decide(policy, _votes([*rows, recorded]))
        if outcome.state in STATUSES:
            queen_approvals.conclude(task, outcome.state, outcome.reason)
    audit.record_change("JobRequest:Approve", request, summary=f"{status} {task_type} of {request.job_type} #{request.pk}",
                        data={"task_type": task_type, "status": status, "execution_id": execution_pk})  # fmt: skip
    return recorded
