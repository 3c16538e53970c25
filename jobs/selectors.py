"""Reads of jobs data, always through the organization scope."""

from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from jobs.definition.errors import Problem
from jobs.models import (
    ErrorCode,
    JobConfig,
    JobDefinition,
    JobExecution,
    JobRequest,
    SystemConfig,
    TaskExecution,
    WebhookDelivery,
)  # fmt: skip
from jobs.states import JOB_RUNNING, JobState
from orgs.scoping import scoped


def definitions_live(org_id: int) -> QuerySet[JobDefinition]:
    return scoped(JobDefinition, org_id).filter(deleted_at__isnull=True)


def is_row_id(key: str) -> bool:
    """A key written the way an id is: ASCII digits, no leading zero, within a bigint."""
    return key.isascii() and key.isdigit() and not key.startswith("0") and len(key) <= 18


def definition_get(org_id: int, key: str, version: str | None = None) -> JobDefinition:
    """The latest (or given version) of the job type ``key``; when no definition has that job
    type and ``key`` is written as an id (digits, no leading zero), the definition with that id.
    So ``00001`` and ``1x`` are always job types, and a job type ``123`` wins over id 123."""
    qs = definitions_live(org_id)
    by_type = qs.filter(job_type=key)
    if is_row_id(key) and not by_type.exists():
        found = qs.filter(pk=int(key)).first()
        if found is None:
            raise JobDefinition.DoesNotExist(f"no job definition {key!r}")
        return found
    if version:
        if version.isascii() and version.isdigit():
            by_type = by_type.filter(version=int(version)) if len(version) <= 9 else by_type.none()
        else:
            by_type = by_type.filter(sem_version=version)
    else:
        by_type = by_type.filter(is_latest=True)
    # two versions may share a sem_version: the newest of them
    found = by_type.order_by("-version").first()
    if found is None:
        raise JobDefinition.DoesNotExist(f"no job definition {key!r}")
    return found


def latest_definition(org_id: int, job_type: str) -> JobDefinition | None:
    return definitions_live(org_id).filter(job_type=job_type, is_latest=True).first()


def definition_warnings(definition: JobDefinition) -> list[str]:
    """What the upload warned about: fields accepted but not acted on (docs/definitions.md)."""
    return [str(Problem(**w)) for w in definition.spec.get("warnings") or [] if isinstance(w, dict)]


def public_plugins() -> QuerySet[JobDefinition]:
    """Public plugins of every organization: the one cross-organization read, by design."""
    return JobDefinition.objects.filter(public_plugin=True, deleted_at__isnull=True, is_latest=True)


def plugin_versions(job_type: str) -> QuerySet[JobDefinition]:
    """Every live version of a public plugin, whichever organization published it."""
    return JobDefinition.objects.filter(job_type=job_type, public_plugin=True, deleted_at__isnull=True)


def job_configs(org_id: int, job_type: str) -> QuerySet[JobConfig]:
    return scoped(JobConfig, org_id).filter(job_type=job_type)


def requests_for(org_id: int) -> QuerySet[JobRequest]:
    return scoped(JobRequest, org_id)


def request_get(org_id: int, request_id: int) -> JobRequest:
    return (
        requests_for(org_id)
        .select_related("last_execution")
        .prefetch_related("params", "last_execution__tasks")
        .get(pk=request_id)
    )


def running_count(org_id: int, job_type: str) -> int:
    running = [s.value for s in JOB_RUNNING]
    return JobRequest.objects.filter(organization_id=org_id, job_type=job_type, job_state__in=running).count()


def pending_ahead(request: JobRequest, now: datetime) -> int:
    """Runnable pending requests of the same organization the scheduler takes before this one
    (other organizations' requests are not counted: their number is theirs to know)."""
    return (
        JobRequest.objects.filter(
            organization_id=request.organization_id, job_state=JobState.PENDING, scheduled_at__lte=now
        )
        .filter(
            Q(job_priority__gt=request.job_priority) | Q(job_priority=request.job_priority, pk__lt=request.pk)
        )
        .count()
    )


def average_duration_secs(org_id: int, job_type: str, sample: int = 20) -> float | None:
    rows = list(
        JobExecution.objects.filter(
            organization_id=org_id, job_request__job_type=job_type, job_state=JobState.COMPLETED,
            ended_at__isnull=False,
        ).order_by("-id").values_list("started_at", "ended_at")[:sample]
    )  # fmt: skip
    if not rows:
        return None
    # every end is set, by the filter; the condition tells mypy
    return sum((end - start).total_seconds() for start, end in rows if end is not None) / len(rows)


def webhook_deliveries(org_id: int, request_id: int) -> QuerySet:
    """The webhook delivery attempts of one request of the organization (404 if not its own)."""
    request = requests_for(org_id).only("pk").get(pk=request_id)
    return WebhookDelivery.objects.filter(job_request=request).select_related("task_execution").order_by("id")


def with_list_rows(requests: QuerySet[JobRequest]) -> QuerySet[JobRequest]:
    """Requests with what a list row shows loaded in two prefetches: params and the graph's tasks
    of the last execution (a fan-out's instances are not tasks of the strip: its step stands for
    them)."""
    graph_tasks = Prefetch("last_execution__tasks", queryset=TaskExecution.objects.filter(fan_out_of=""))
    return requests.select_related("user", "parent", "last_execution").prefetch_related("params", graph_tasks)


def request_tasks(job_request: JobRequest) -> QuerySet[TaskExecution]:
    """Every task execution of a request (the caller scoped the request), over all its runs."""
    return TaskExecution.objects.filter(job_execution__job_request=job_request)


def error_codes_for(org_id: int) -> QuerySet[ErrorCode]:
    """The error codes an organization's tasks are matched with: the shared ones and its own."""
    return ErrorCode.objects.filter(Q(organization__isnull=True) | Q(organization_id=org_id))


def system_configs() -> QuerySet[SystemConfig]:
    """Every system config (superusers only: the caller checks)."""
    return SystemConfig.objects.all()
