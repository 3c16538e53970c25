"""Reads of artifacts, always through the organization scope."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from artifacts.models import Artifact
from orgs.scoping import scoped

FILE_KINDS = [Artifact.Kind.ARTIFACT, Artifact.Kind.UPLOAD]


def artifacts_for(org_id: int) -> QuerySet[Artifact]:
    return scoped(Artifact, org_id)


def artifact_get(org_id: int, artifact_id: int) -> Artifact:
    return artifacts_for(org_id).get(pk=artifact_id)


def latest_task_artifacts(
    org_id: int, job_request_id: int, task_types: Iterable[str] | None = None
) -> list[Artifact]:
    """ARTIFACT rows of a request's tasks, only those of each task's latest run (a job retry
    reuses earlier runs of completed tasks; a task retry supersedes its earlier attempts), in
    upload order per task."""
    qs = artifacts_for(org_id).filter(job_request_id=job_request_id, kind=Artifact.Kind.ARTIFACT)
    if task_types is not None:
        qs = qs.filter(task_type__in=list(task_types))
    return _latest_runs(list(qs.order_by("id")))


def latest_task_artifacts_of_requests(requests: dict[int, int]) -> dict[int, list[Artifact]]:
    """``latest_task_artifacts`` of many requests (id -> organization id) in one query."""
    rows = Artifact.objects.filter(job_request_id__in=list(requests), kind=Artifact.Kind.ARTIFACT).order_by(
        "id"
    )
    by_request: dict[int, list[Artifact]] = {}
    for row in rows:
        request_id = row.job_request_id
        if request_id is not None and row.organization_id == requests[request_id]:
            by_request.setdefault(request_id, []).append(row)
    return {request_id: _latest_runs(found) for request_id, found in by_request.items()}


def _latest_runs(rows: list[Artifact]) -> list[Artifact]:
    latest: dict[str, tuple[int, int]] = {}
    for row in rows:
        run = (row.task_execution_id or 0, int(row.metadata.get("attempt") or 0))
        latest[row.task_type] = max(latest.get(row.task_type, run), run)
    return [
        r
        for r in rows
        if (r.task_execution_id or 0, int(r.metadata.get("attempt") or 0)) == latest[r.task_type]
    ]


def artifacts_by_ids(org_id: int, ids: Iterable[str]) -> list[Artifact]:
    wanted = [int(i) for i in ids if str(i).strip().isascii() and str(i).strip().isdigit()]
    return list(artifacts_for(org_id).filter(pk__in=wanted, kind__in=FILE_KINDS).order_by("id"))


def cache_for(org_id: int, job_type: str, *, key: str | None, task_type: str) -> Artifact | None:
    """The newest cache of a job type: the one with ``key`` when the key is known before the task
    runs, else the newest this task saved (its key comes from files the task may create)."""
    qs = artifacts_for(org_id).filter(kind=Artifact.Kind.CACHE, job_type=job_type)
    qs = qs.filter(group=key) if key else qs.filter(task_type=task_type)
    return qs.order_by("-id").first()


def expired(now: datetime, organization_id: int | None = None) -> QuerySet[Artifact]:
    qs = Artifact.objects.filter(expires_at__isnull=False, expires_at__lte=now)
    return qs if organization_id is None else qs.filter(organization_id=organization_id)
