"""Manual approval on the web: the review form's POST (the request page's Approve/Reject panel,
jobs/ui/approval_panel.py) and the "Waiting for my approval" page. The rules are the review service's
(``jobs.services.approvals``)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from jobs import selectors
from jobs.services import approvals
from jobs.ui.views import _org_id, member_required
from orgs.web_permissions import requires


@member_required
@require_POST
@requires("JobRequest:Approve")
def request_review(request: HttpRequest, pk: int) -> HttpResponse:
    job_request = get_object_or_404(selectors.requests_for(_org_id(request)).select_related("user"), pk=pk)
    try:
        approvals.review(
            request=job_request, user=request.user, execution_id=request.POST.get("execution_id"),
            task_type=request.POST.get("task_type", ""), status=request.POST.get("status", ""),
            comments=request.POST.get("comments", ""),
        )  # fmt: skip
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        verb = "approved" if request.POST.get("status", "").upper() == "APPROVED" else "rejected"
        messages.success(request, f"{request.POST.get('task_type')} of {job_request.job_type} #{pk} {verb}")
    return redirect("ui:request", pk=pk)


@member_required
def waiting_for_me(request: HttpRequest) -> HttpResponse:
    """Tasks waiting for approval that this user may review now."""
    allowed = "JobRequest:Approve" in request.user.permissions()  # type: ignore[union-attr]
    rows = approvals.awaiting_user(_org_id(request), request.user) if allowed else []
    return render(request, "jobs/approvals_waiting.html", {"rows": rows, "allowed": allowed})
