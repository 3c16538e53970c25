"""Request-page endpoints beside the page itself: its JSON refresh, one attempt's log as text
(raw or download), re-running every task (a hard restart) and cancelling one task."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from jobs import selectors
from jobs.domain.logs import task_log_text
from jobs.models import JobRequest, TaskExecution
from jobs.services.request_actions import request_act, task_cancel
from jobs.ui.request_page import page_state
from jobs.ui.views import _org_id, member_required
from orgs.web_permissions import requires


def _request(request: HttpRequest, pk: int) -> JobRequest:
    return get_object_or_404(
        selectors.requests_for(_org_id(request)).select_related("job_definition", "last_execution"), pk=pk
    )


@member_required
def request_page_state(request: HttpRequest, pk: int) -> JsonResponse:
    """Tasks with their attempts and durations, the failed task and the timeline, as JSON."""
    return JsonResponse(page_state(_request(request, pk)))


@member_required
def task_log(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    """One task's stored log as plain text: ``?attempt=N`` (default: its latest), ``?download=1``."""
    job_request = _request(request, pk)
    task = get_object_or_404(selectors.request_tasks(job_request), pk=task_id)
    raw = request.GET.get("attempt", "")
    if raw and not raw.isdigit():
        return HttpResponse("attempt must be a whole number", status=400, content_type="text/plain")
    attempt = int(raw) if raw else task.attempt or None
    if attempt is not None and attempt > max(task.attempt, 1):
        raise Http404(f"task {task.task_type} has no attempt {attempt}")
    response = HttpResponse(task_log_text(task.pk, attempt), content_type="text/plain; charset=utf-8")
    if request.GET.get("download"):
        name = f"{job_request.job_type}-{job_request.pk}-{task.task_type}-attempt{attempt or 1}.log"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@member_required
@require_POST
@requires("JobRequest:Cancel")
def request_rerun_all(request: HttpRequest, pk: int) -> HttpResponse:
    """Run every task again (the Restart button re-runs only what did not complete)."""
    job_request = _request(request, pk)
    try:
        request_act("restart", request=job_request, hard=True)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(
            request, f"{job_request.job_type} #{job_request.pk} restarted: every task runs again"
        )
    return redirect("ui:request", pk=pk)


@member_required
@require_POST
@requires("JobRequest:Cancel")
def request_task_cancel(request: HttpRequest, pk: int, task_type: str) -> HttpResponse:
    """Cancel one running task; the job follows its on_failed path (or fails)."""
    job_request = _request(request, pk)
    try:
        task_cancel(request=job_request, task_type=task_type)
    except TaskExecution.DoesNotExist:
        raise Http404(f"no task {task_type}") from None
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"task {task_type} of {job_request.job_type} #{job_request.pk} cancelled")
    return redirect("ui:request", pk=pk)
