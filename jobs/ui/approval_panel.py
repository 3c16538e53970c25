"""The request page's approval panel (templates/jobs/_approvals.html): the MANUAL tasks waiting
for approval, whether this user may review each, and every review recorded."""

from typing import Any

from django.http import HttpRequest

from jobs.models import JobRequest
from jobs.services import approvals


def panel(request: HttpRequest, job_request: JobRequest) -> dict[str, Any]:
    """The request page's approval panel: the waiting tasks (with whether this user may review
    each) and every review recorded."""
    allowed = "JobRequest:Approve" in request.user.permissions()  # type: ignore[union-attr]
    waiting = approvals.waiting_tasks(job_request, request.user)
    return {
        "waiting": [{"task": w.task, "may": allowed and not w.refusal, "why": w.refusal} for w in waiting],
        "reviews": list(approvals.request_reviews(job_request)),
    }
