"""Plans' limits read from the database and enforced, and the usage report.

Limits come from the organization's active ``Subscription`` (and ``Organization.max_concurrency``);
the decisions are ``orgs.quotas``'s. Usage counts what the ants measured: a task's ``cpu_secs``
is the time its attempt ran on the ant; its cost is ``cpu_secs`` times its ``cost_factor`` (the
task's executor or definition states it) or, when it states none, the plan's ``cost_factor``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, F, FilteredRelation, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from jobs import fastsql
from jobs.states import JOB_RUNNING
from orgs import quotas
from orgs.models import Organization, Subscription

_RUNNING = [str(state) for state in JOB_RUNNING]  # a request in these holds a concurrency slot


class QuotaExceeded(ValidationError):
    """A plan's limit refuses the action. A ValidationError so every submit path (cron,
    triggers, forks, the UI) reports it as it reports bad input; the API answers ``status``."""

    def __init__(self, message: str, *, limit: str, status: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.status = status


def plan_of(org_id: int) -> Subscription | None:
    return Subscription.objects.filter(organization_id=org_id, active=True).first()


def cpu_quota_of(org_id: int) -> Subquery:
    """The active plan's cpu_quota as a subquery: the submit reads it with the definition."""
    plans = Subscription.objects.filter(organization_id=org_id, active=True)
    return Subquery(plans.values("cpu_quota")[:1])


def cpu_used(org_id: int, since: datetime) -> float:
    """CPU seconds of the organization's tasks that ended since ``since``."""
    from jobs.models import TaskExecution

    total = TaskExecution.objects.filter(organization_id=org_id, ended_at__gte=since).aggregate(
        s=Sum("cpu_secs")
    )
    return float(total["s"] or 0.0)


def storage_used(org_ids: Iterable[int]) -> dict[int, int]:
    """Bytes of stored artifacts (logs, caches and uploads included) per organization."""
    from artifacts.models import Artifact

    rows = Artifact.objects.filter(organization_id__in=list(org_ids)).values("organization_id")
    return {row["organization_id"]: int(row["n"] or 0) for row in rows.annotate(n=Sum("size"))}


def check_cpu(org_id: int, cpu_quota: int | None) -> None:
    """Refuse a submit when the organization used its plan period's CPU quota (429).
    ``cpu_quota`` came with the submit's definition query: no plan costs no query."""
    if not cpu_quota:
        return
    plan = plan_of(org_id)
    if plan is None or plan.cpu_quota <= 0:
        return
    since = quotas.period_start(plan.started_at, plan.period, timezone.now())
    why = quotas.cpu_refusal(cpu_quota=plan.cpu_quota, cpu_used=cpu_used(org_id, since), policy=plan.policy,
                             since=since)  # fmt: skip
    if why:
        raise QuotaExceeded(why, limit="cpu_quota", status=429)


def check_storage(org_id: int, adding: int) -> None:
    """Refuse storing ``adding`` more bytes over the plan's disk quota (413)."""
    plan = plan_of(org_id)
    if plan is None or plan.disk_quota <= 0:
        return
    used = storage_used([org_id]).get(org_id, 0)
    why = quotas.disk_refusal(disk_quota=plan.disk_quota, used=used, adding=adding, policy=plan.policy)
    if why:
        raise QuotaExceeded(why, limit="disk_quota", status=413)


# every start reads it: compiled once per shape (jobs.fastsql.ByShape)
_LIMITS = fastsql.ByShape(
    lambda org_ids: Organization.objects.filter(pk__in=org_ids)
    .annotate(plan=FilteredRelation("subscription", condition=Q(subscription__active=True)))
    .values_list("pk", "name", "max_concurrency", "plan__policy", "plan__max_concurrency", "plan__disk_quota"),
    org_ids=int,
)  # fmt: skip


def _limits(org_ids: set[int]) -> dict[int, quotas.OrgLimits]:
    """Limits of those organizations that have any: one query (with the active plan joined),
    and one for storage when a plan has a disk quota."""
    query = _LIMITS.rows(org_ids=sorted(org_ids))
    found = {
        org_id: quotas.OrgLimits(name=name, org_max_concurrency=org_max, plan_max_concurrency=plan_max or 0,
                                 policy=policy or "", disk_quota=disk_quota or 0)
        for org_id, name, org_max, policy, plan_max, disk_quota in query
        if org_max or plan_max or disk_quota
    }  # fmt: skip
    with_disk = [org_id for org_id, limits in found.items() if limits.disk_quota]
    if with_disk:
        used = storage_used(with_disk)
        for org_id in with_disk:
            found[org_id] = replace(found[org_id], storage_used=used.get(org_id, 0))
    return found


def limits_flag() -> dict[str, Q]:
    """An annotation for a query of requests: whether the request's organization has a limit
    ``admit_starts`` checks (its own max_concurrency, its active plan's, a disk quota). The
    scheduler's pick carries it: a start of organizations without any sends no query for them."""
    org = OuterRef("organization_id")
    plan = Subscription.objects.filter(organization_id=org, active=True)
    return {
        "has_org_limits": Exists(Organization.objects.filter(pk=org, max_concurrency__gt=0))
        | Exists(plan.filter(Q(max_concurrency__gt=0) | Q(disk_quota__gt=0)))
    }


def admit_starts(wait: Callable[[Any, str], None], requests: list[Any]) -> list[Any]:
    """The queen's start step: of the requests about to start (priority order), those their
    organizations' limits let start now; ``wait(request, reason)`` notes why each other one
    stays PENDING. No query when the pick says none of their organizations has a limit
    (``limits_flag``), one when none has a concurrency limit."""
    from jobs.models import JobRequest

    if not any(getattr(r, "has_org_limits", True) for r in requests):
        return requests
    limits = _limits({r.organization_id for r in requests})
    if not limits:
        return requests
    limited = [org_id for org_id, org in limits.items() if org.concurrency[0]]
    running: dict[int, int] = {}
    if limited:
        rows = JobRequest.objects.filter(organization_id__in=limited, job_state__in=_RUNNING)
        running = {
            r["organization_id"]: r["n"] for r in rows.values("organization_id").annotate(n=Count("id"))
        }
    admitted, waiting = quotas.admit([(r.pk, r.organization_id) for r in requests], running, limits)
    for request in requests:
        if request.pk in waiting:
            wait(request, waiting[request.pk])
    chosen = set(admitted)
    return [r for r in requests if r.pk in chosen]


# -- the usage report -------------------------------------------------------------------------------


@dataclass
class Usage:
    jobs: int = 0
    tasks: int = 0
    cpu_secs: float = 0.0
    # CPU seconds of tasks with a cost_factor of their own (already weighted), and of those
    # without one (the plan's cost_factor weighs them)
    weighted: float = 0.0
    unweighted: float = 0.0
    storage_bytes: int = 0

    def row(self, cost_factor: float) -> dict[str, Any]:
        return {
            "jobs": self.jobs, "tasks": self.tasks, "cpu_secs": round(self.cpu_secs, 3),
            "cost": round(self.weighted + self.unweighted * cost_factor, 3), "storage_bytes": self.storage_bytes,
        }  # fmt: skip


def _plan_row(plan: Subscription | None, org_id: int, now: datetime) -> dict[str, Any] | None:
    if plan is None:
        return None
    since = quotas.period_start(plan.started_at, plan.period, now)
    return {
        "id": plan.pk, "policy": plan.policy, "period": plan.period, "period_started_at": since,
        "max_concurrency": plan.max_concurrency, "cpu_quota": plan.cpu_quota, "disk_quota": plan.disk_quota,
        "max_ants": plan.max_ants, "cost_factor": plan.cost_factor,
        "cpu_secs_in_period": round(cpu_used(org_id, since), 3) if plan.cpu_quota else None,
    }  # fmt: skip


def usage_report(org_ids: list[int] | None, start: datetime, end: datetime) -> dict[str, Any]:
    """Jobs (executions started), tasks (ended), CPU seconds and cost in [start, end), and the
    artifact bytes stored now, per organization and per job type. ``org_ids`` None: every one."""
    from artifacts.models import Artifact
    from jobs.models import JobExecution, TaskExecution

    orgs = Organization.objects.order_by("name")
    if org_ids is not None:
        orgs = orgs.filter(pk__in=org_ids)
    names = dict(orgs.values_list("pk", "name"))
    plans = {
        p.organization_id: p for p in Subscription.objects.filter(organization_id__in=names, active=True)
    }
    table: dict[int, dict[str, Usage]] = {org_id: {} for org_id in names}

    def cell(org_id: int, job_type: str) -> Usage:
        return table[org_id].setdefault(job_type, Usage())

    jobs = (
        JobExecution.objects.filter(organization_id__in=names, started_at__gte=start, started_at__lt=end)
        .values("organization_id", "job_request__job_type")
        .annotate(n=Count("job_request_id", distinct=True))
    )
    for row in jobs:
        cell(row["organization_id"], row["job_request__job_type"]).jobs = row["n"]
    tasks = (
        TaskExecution.objects.filter(organization_id__in=names, ended_at__gte=start, ended_at__lt=end)
        .values("organization_id", "job_execution__job_request__job_type")
        .annotate(
            n=Count("id"), cpu=Sum("cpu_secs"),
            weighted=Sum(F("cpu_secs") * F("cost_factor"), filter=Q(cost_factor__gt=0)),
            unweighted=Sum("cpu_secs", filter=Q(cost_factor__lte=0)),
        )
    )  # fmt: skip
    for row in tasks:
        usage = cell(row["organization_id"], row["job_execution__job_request__job_type"])
        usage.tasks, usage.cpu_secs = row["n"], float(row["cpu"] or 0)
        usage.weighted, usage.unweighted = float(row["weighted"] or 0), float(row["unweighted"] or 0)
    stored = (
        Artifact.objects.filter(organization_id__in=names)
        .values("organization_id", "job_type")
        .annotate(n=Sum("size"))
    )
    for row in stored:
        cell(row["organization_id"], row["job_type"]).storage_bytes = int(row["n"] or 0)
    now = timezone.now()
    out = []
    for org_id, name in names.items():
        plan = plans.get(org_id)
        factor = plan.cost_factor if plan else 1.0
        total = Usage()
        for usage in table[org_id].values():
            for attr in ("jobs", "tasks", "cpu_secs", "weighted", "unweighted", "storage_bytes"):
                setattr(total, attr, getattr(total, attr) + getattr(usage, attr))
        by_type = [{"job_type": t, **u.row(factor)} for t, u in sorted(table[org_id].items())]
        out.append({"organization_id": org_id, "organization": name, **total.row(factor),
                    "plan": _plan_row(plan, org_id, now), "job_types": by_type})  # fmt: skip
    return {"from": start, "to": end, "organizations": out}


def ants_refusal(org_id: int, ant_id: str, connected: Iterable[str]) -> str | None:
    """Why another ant of the organization (a WEBSOCKET ant; shared ants belong to none) is
    refused over the plan's max_ants: alive registrations and ``connected`` sockets (not yet
    heard by a queen) count, ``ant_id`` itself does not (a reconnect)."""
    from ants.models import AntRegistration

    plan = plan_of(org_id)
    if plan is None or plan.max_ants <= 0:
        return None
    alive = AntRegistration.objects.filter(organization_id=str(org_id), alive=True, shutting_down=False)
    ids = (set(alive.values_list("ant_id", flat=True)) | set(connected)) - {ant_id}
    return quotas.ants_refusal(max_ants=plan.max_ants, registered=len(ids), policy=plan.policy)
