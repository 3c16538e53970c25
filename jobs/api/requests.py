"""REST API of job requests (the reference system's paths)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, Throttled, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs import reports, selectors, stats
from jobs.api.definitions import dot_png_response
from jobs.api.request_serializers import (
    JobRequestDetailSerializer,
    JobRequestInput,
    JobRequestManyInput,
    JobRequestSerializer,
    TaskExecutionSerializer,
)
from jobs.definition.dot import to_dot
from jobs.domain.logs import task_log_text
from jobs.domain.specs import graph_spec
from jobs.fan_out_selectors import fan_out_counts
from jobs.models import JobDefinition, JobRequest
from jobs.redaction import redact, secret_values
from jobs.services import rate_limits
from jobs.services.control import TaskNotRunning
from jobs.services.request_actions import request_act, task_cancel
from jobs.services.requests import MAX_SUBMIT_MANY, request_submit, requests_submit
from jobs.states import JOB_TERMINAL, JobState
from orgs.models import ApiToken

# spellings of the list filters the reference's guides use (``?jobType=...``, ``?state=...``)
FILTER_ALIASES = {"jobType": "job_type", "jobState": "job_state", "state": "job_state", "jobGroup": "job_group",
                  "userKey": "user_key"}  # fmt: skip


def _with_aliases(query: Any) -> dict[str, str]:
    params = {k: query.get(k) for k in query}
    for alias, name in FILTER_ALIASES.items():
        if params.get(alias) and not params.get(name):
            params[name] = params[alias]
    return params


def _date_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        # None when malformed; ValueError when well-formed but not a date (2026-13-45)
        value = parse_datetime(raw)
    except ValueError as exc:
        raise ValidationError({name: f"not a valid date-time: {raw!r} ({exc})"}) from None
    if value is None:
        raise ValidationError({name: f"not an ISO 8601 date-time: {raw!r}"})
    try:
        return (value if value.tzinfo else timezone.make_aware(value)).astimezone(UTC)
    except (OverflowError, ValueError):  # near year 1 or 9999 with an offset
        raise ValidationError({name: f"date-time out of range: {raw!r}"}) from None


class RequestListCreate(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read", "POST": "JobRequest:Submit"}

    @extend_schema(
        responses=JobRequestSerializer(many=True),
        parameters=[
            OpenApiParameter("job_type", str), OpenApiParameter("job_state", str), OpenApiParameter("job_group", str),
            OpenApiParameter("user_key", str), OpenApiParameter("from", str, description="created at or after"),
            OpenApiParameter("to", str, description="created before"), OpenApiParameter("page", int),
            OpenApiParameter("pageSize", int),
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        qs = selectors.requests_for(self.org_id).prefetch_related("params").order_by("-id")
        params = _with_aliases(request.query_params)
        for name in ("job_type", "job_group", "user_key", "platform"):
            if params.get(name):
                qs = qs.filter(**{name: params[name]})
        states: list[str] | None = None
        if params.get("job_state"):
            states = [s.strip().upper() for s in params["job_state"].split(",") if s.strip()]
            unknown = [s for s in states if s not in JobState.__members__]
            if unknown:
                raise ValidationError({"job_state": f"unknown state {', '.join(unknown)}"})
            qs = qs.filter(job_state__in=states)
        if (start := _date_param(request, "from")) is not None:
            qs = qs.filter(created_at__gte=start)
        if (end := _date_param(request, "to")) is not None:
            qs = qs.filter(created_at__lt=end)
        # TotalRecords: by type, state and creation time from the counts (exact, however long the
        # history); a list filtered by group, user key or platform counts at most COUNT_CAP rows
        total = stats.list_total(
            self.org_id, qs, start=start, end=end, job_type=params.get("job_type") or None, states=states,
            uncounted_filter=any(params.get(name) for name in ("job_group", "user_key", "platform")),
        )  # fmt: skip
        return self.paginate(request, qs, JobRequestSerializer, total=total)

    @extend_schema(
        request=JobRequestInput,
        responses={201: JobRequestSerializer},
        description="Submit a request. 429 with Retry-After when the organization submits faster than "
        "FORMICARY_SUBMIT_RATE (bursts of FORMICARY_SUBMIT_BURST); a bulk submit counts once. 429 naming "
        "`cpu_quota` when the organization used its plan period's CPU seconds.",
    )
    def post(self, request: Request) -> Response:
        _rate_checked(self.org_id)
        job_request = request_submit(org_id=self.org_id, user=request.user, triggered_by=_via(request),
                                     **_submission(request.data))  # fmt: skip
        return Response(JobRequestSerializer(job_request).data, status=status.HTTP_201_CREATED)


def _rate_checked(org_id: int) -> None:
    """429 with Retry-After when the organization submits faster than its rate."""
    try:
        rate_limits.submit_rate_check(org_id=org_id)
    except rate_limits.SubmitRateLimited as exc:
        raise Throttled(wait=exc.retry_after, detail=f"{exc.reason}.") from None  # DRF adds the wait


def _via(request: Request) -> str:
    """``token <name>`` when the call came with an API token (a person's session says nothing)."""
    token = request.auth
    return f"token {token.name}" if isinstance(token, ApiToken) else ""


def _submission(data: object, where: str = "") -> dict[str, Any]:
    """``request_submit``'s arguments from one JobRequestInput object."""
    checked = JobRequestInput(data=data)
    if not checked.is_valid():
        raise ValidationError({where: checked.errors} if where else checked.errors)
    v = dict(checked.validated_data)
    params = v.pop("params") or {"values": {}, "secret": set()}
    return {**v, "params": params["values"], "secret_params": params["secret"]}


class RequestSubmitMany(OrgAPIView):
    required_permissions = {"POST": "JobRequest:Submit"}

    @extend_schema(
        request=JobRequestManyInput,
        responses={201: JobRequestSerializer(many=True)},
        description=f"Submit up to {MAX_SUBMIT_MANY} requests at once, all or none: "
        '`{"requests": [<the body of POST /api/jobs/requests>, ...]}`. A problem names the request '
        "it is in (`requests[3]: ...`). One database round trip for all of them, and one wake-up of the "
        "queen, instead of one each.",
    )
    def post(self, request: Request) -> Response:
        _rate_checked(self.org_id)  # one call, however many requests it holds
        items = request.data.get("requests") if isinstance(request.data, dict) else None
        if not isinstance(items, list):
            raise ValidationError({"requests": "must be a list of request objects"})
        if len(items) > MAX_SUBMIT_MANY:
            raise ValidationError({"requests": f"at most {MAX_SUBMIT_MANY} requests at once"})
        submissions = [_submission(item, f"requests[{i}]") for i, item in enumerate(items)]
        created = requests_submit(org_id=self.org_id, user=request.user, submissions=submissions,
                                  triggered_by=_via(request))  # fmt: skip
        rows = selectors.requests_for(self.org_id).filter(pk__in=[r.pk for r in created])
        rows = rows.prefetch_related("params").order_by("id")
        return Response(JobRequestSerializer(rows, many=True).data, status=status.HTTP_201_CREATED)


class RequestDetail(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(responses=JobRequestDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobRequestDetailSerializer(selectors.request_get(self.org_id, pk)).data)


class RequestCancel(OrgAPIView):
    required_permissions = {"POST": "JobRequest:Cancel"}

    @extend_schema(request=None, responses=JobRequestSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job_request = request_act("cancel", request=selectors.request_get(self.org_id, pk))
        return Response(JobRequestSerializer(job_request).data)


class TaskCancelRefused(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class RequestTaskCancel(OrgAPIView):
    """Cancel one running task: killed on its ant, it ends CANCELLED and the job follows its
    ``on_failed`` path (or fails); it is not retried."""

    required_permissions = {"POST": "JobRequest:Cancel"}

    @extend_schema(
        request=None,
        responses={200: TaskExecutionSerializer},
        description="404: no such request (or another organization's) or no such task in its definition; "
        "409: the task is not READY, STARTED or EXECUTING (the answer names its state).",
    )
    def post(self, request: Request, pk: int, task_type: str) -> Response:
        job_request = selectors.request_get(self.org_id, pk)
        try:
            task = task_cancel(request=job_request, task_type=task_type)
        except TaskNotRunning as exc:
            raise TaskCancelRefused("; ".join(exc.messages)) from None
        return Response(redact(TaskExecutionSerializer(task).data, secret_values(job_request)))


class RequestPause(OrgAPIView):
    required_permissions = {"POST": "JobRequest:Cancel"}

    @extend_schema(request=None, responses=JobRequestSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job_request = request_act("pause", request=selectors.request_get(self.org_id, pk))
        return Response(JobRequestSerializer(job_request).data)


class RequestResume(OrgAPIView):
    required_permissions = {"POST": "JobRequest:Cancel"}

    @extend_schema(request=None, responses=JobRequestSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job_request = request_act("resume", request=selectors.request_get(self.org_id, pk))
        return Response(JobRequestSerializer(job_request).data)


class RequestRestart(OrgAPIView):
    required_permissions = {"POST": "JobRequest:Cancel"}

    @extend_schema(
        request=None,
        responses=JobRequestSerializer,
        parameters=[
            OpenApiParameter("hard", bool, description="re-run every task, not only unfinished ones; "
                             "runs the latest definition unless `version` says otherwise"),
            OpenApiParameter("version", str, description="`latest`, a sem_version, a version number or a "
                             "definition id of the same job type; empty: the definition it ran"),
        ],
    )  # fmt: skip
    def post(self, request: Request, pk: int) -> Response:
        hard = request.query_params.get("hard", "").lower() in ("1", "true", "yes")
        job_request = selectors.request_get(self.org_id, pk)
        version = request.query_params.get("version", "").strip()
        definition = _restart_definition(self.org_id, job_request, version or ("latest" if hard else ""))
        job_request = request_act("restart", request=job_request, hard=hard, definition=definition)
        return Response(JobRequestSerializer(job_request).data)


def _restart_definition(org_id: int, job_request: JobRequest, version: str) -> JobDefinition | None:
    """The definition a restart runs, as the reference's ``?version=`` names it (None: the same)."""
    if not version:
        return None
    versions = selectors.definitions_live(org_id).filter(job_type=job_request.job_type)
    if version == "latest":
        found = versions.filter(is_latest=True).first()
        return found  # none: the job type was deleted; the request keeps the version it ran
    found = versions.filter(sem_version=version).order_by("-version").first()
    if found is None and version.isdigit():
        found = versions.filter(version=int(version)).first() or versions.filter(pk=int(version)).first()
    if found is None:
        raise ValidationError({"version": f"job type {job_request.job_type!r} has no version {version!r}"})
    return found


class RequestTrigger(OrgAPIView):
    required_permissions = {"POST": "JobRequest:Cancel"}

    @extend_schema(request=None, responses=JobRequestSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job_request = request_act("trigger", request=selectors.request_get(self.org_id, pk))
        return Response(JobRequestSerializer(job_request).data)


class RequestWaitTime(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(responses=dict)
    def get(self, request: Request, pk: int) -> Response:
        job_request = selectors.request_get(self.org_id, pk)
        now = timezone.now()
        body: dict = {
            "job_request_id": job_request.pk, "job_type": job_request.job_type, "job_state": job_request.job_state,
            "scheduled_at": job_request.scheduled_at, "reason": job_request.state_message,
            "queue_number": 0, "estimated_wait_secs": 0.0,
        }  # fmt: skip
        if job_request.job_state == JobState.PENDING:
            ahead = selectors.pending_ahead(job_request, now)
            average = selectors.average_duration_secs(self.org_id, job_request.job_type) or 0.0
            concurrency = max(job_request.job_definition.max_concurrency, 1)
            until_scheduled = max(0.0, (job_request.scheduled_at - now).total_seconds())
            body["queue_number"] = ahead
            body["estimated_wait_secs"] = round(max(until_scheduled, ahead * average / concurrency), 3)
            running = selectors.running_count(self.org_id, job_request.job_type)
            limit = job_request.job_definition.max_concurrency
            if until_scheduled:
                body["reason"] = f"scheduled for {job_request.scheduled_at.isoformat()}"
            elif running >= limit:
                body["reason"] = (
                    f"waiting: {running} of {limit} allowed {job_request.job_type} jobs are running"
                )
            elif not body["reason"]:
                body["reason"] = f"{ahead} runnable requests ahead"
        return Response(body)


class RequestDeadIds(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(responses=list[int], parameters=[OpenApiParameter("limit", int)])
    def get(self, request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", 200)), 1), 10_000)
        except ValueError:
            raise ValidationError({"limit": "must be a whole number"}) from None
        since = timezone.now() - timedelta(hours=10)
        ids = (
            selectors.requests_for(self.org_id)
            .filter(job_state__in=[s.value for s in JOB_TERMINAL], updated_at__gte=since)
            .order_by("-updated_at").values_list("pk", flat=True)[:limit]
        )  # fmt: skip
        return Response(list(ids))


class RequestStats(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(
        responses=dict,
        parameters=[OpenApiParameter("from", str), OpenApiParameter("to", str)],
        description="Requests created in [from, to), by job type and state. Without `from`, the "
        f"{reports.STATS_WINDOW_HOURS} hours before `to` (or now): the answer costs what the window "
        "holds, not the whole history.",
    )
    def get(self, request: Request) -> Response:
        end = _date_param(request, "to")
        start = _date_param(request, "from")
        if start is None:
            start = (end or timezone.now()) - timedelta(hours=reports.STATS_WINDOW_HOURS)
        # each row also carries its job type's success rate and durations (as the Reports page's)
        durations = reports.duration_percentiles(self.org_id, since=start, newest=reports.STATS_DURATIONS)
        return Response(stats.stats_rows(self.org_id, start, end, durations))


class RequestDot(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    def _dot(self, pk: int) -> str:
        job_request = selectors.request_get(self.org_id, pk)
        definition = job_request.job_definition
        states, counts = {}, {}
        if job_request.last_execution is not None:
            states = {
                t.task_type: t.task_state for t in job_request.last_execution.tasks.all() if not t.fan_out_of
            }
            counts = fan_out_counts(execution_id=job_request.last_execution.pk)
        return to_dot(graph_spec(definition.pk, definition.raw_yaml), states, counts)

    @extend_schema(responses={(200, "text/vnd.graphviz"): str})
    def get(self, request: Request, pk: int) -> HttpResponse:
        return HttpResponse(self._dot(pk), content_type="text/vnd.graphviz")


class RequestDotPng(RequestDot):
    @extend_schema(responses={(200, "image/png"): bytes})
    def get(self, request: Request, pk: int) -> HttpResponse:
        return dot_png_response(self._dot(pk))


class RequestLogs(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(
        responses={(200, "text/plain"): str},
        parameters=[
            OpenApiParameter("task_type", str, description="one task's output; all tasks without it")
        ],
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        job_request = selectors.request_get(self.org_id, pk)
        if job_request.last_execution is None:
            return HttpResponse("", content_type="text/plain; charset=utf-8")
        tasks = job_request.last_execution.tasks.all()
        wanted = request.query_params.get("task_type")
        parts = []
        for task in tasks:
            if wanted and task.task_type != wanted:
                continue
            text = task_log_text(task.pk, task.attempt)
            parts.append(text if wanted else f"== {task.task_type} ({task.task_state})\n{text}")
        return HttpResponse("\n".join(parts), content_type="text/plain; charset=utf-8")
