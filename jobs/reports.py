"""The numbers of the Reports page, `GET /api/reports` and `GET /api/jobs/requests/stats`: runs
per day by state, duration percentiles and success rate per job type, slowest and most failing
tasks, over the last ``days`` days of one organization."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any, cast

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.states import JobState, TaskState

DEFAULT_DAYS = 14
# ``GET /api/jobs/requests/stats`` without ``from``: requests of the last day (an index range
# on the organization's creation times, however long the history)
STATS_WINDOW_HOURS = 24
MAX_ROWS = 20_000  # durations are read as rows: the newest ones of the window at most
# the stats API's durations: the newest this many of the window (an index walk of that length,
# so the answer costs the same however many jobs the window holds)
STATS_DURATIONS = 1_000
TOP = 10


def days_param(raw: str | None) -> int:
    if not raw:
        return DEFAULT_DAYS
    if not raw.isdigit() or not 1 <= int(raw) <= 366:
        raise ValidationError({"days": f"a whole number of days from 1 to 366, not {raw!r}"})
    return int(raw)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return round(ordered[rank], 3)


def job_type_numbers(org_id: int, since: Any = None) -> dict[str, dict[str, Any]]:
    """Per job type: runs, succeeded, failed, success_rate, p50_secs, p95_secs."""
    requests = JobRequest.objects.filter(organization_id=org_id)
    if since is not None:
        requests = requests.filter(created_at__gte=since)
    out: dict[str, dict[str, Any]] = {}
    rows = requests.values("job_type").annotate(
        runs=Count("id"), succeeded=Count("id", filter=Q(job_state=JobState.COMPLETED)),
        failed=Count("id", filter=Q(job_state=JobState.FAILED)),
    ).order_by("job_type")  # fmt: skip
    for row in rows:
        finished = row["succeeded"] + row["failed"]
        out[row["job_type"]] = {
            **row,
            "success_rate": round(row["succeeded"] / finished, 4) if finished else None,
        }
    durations = duration_percentiles(org_id, since)
    for job_type, numbers in out.items():
        numbers["p50_secs"], numbers["p95_secs"] = durations.get(job_type, (None, None))
    return out


def duration_percentiles(
    org_id: int, since: Any = None, newest: int = MAX_ROWS
) -> dict[str, tuple[float | None, float | None]]:
    """Per job type: p50 and p95 seconds of the completed executions that ended since ``since``
    (the ``newest`` of them at most: the stats API reads STATS_DURATIONS, whatever the window
    holds)."""
    executions = JobExecution.objects.filter(organization_id=org_id, ended_at__isnull=False,
                                             job_state=JobState.COMPLETED)  # fmt: skip
    if since is not None:
        executions = executions.filter(ended_at__gte=since)
    took = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
    durations: dict[str, list[float]] = defaultdict(list)
    for job_type, duration in executions.order_by("-ended_at").values_list("job_request__job_type", took)[
        :newest
    ]:
        durations[job_type].append(duration.total_seconds())
    return {
        job_type: (percentile(values, 0.50), percentile(values, 0.95))
        for job_type, values in durations.items()
    }


def report(org_id: int, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    now = timezone.now()
    since = now - timedelta(days=days)
    per_day: dict[str, dict[str, int]] = {}
    for offset in range(days - 1, -1, -1):
        per_day[timezone.localdate(now - timedelta(days=offset)).isoformat()] = {}
    rows = (
        JobRequest.objects.filter(organization_id=org_id, created_at__gte=since)
        .annotate(day=TruncDate("created_at")).values("day", "job_state").annotate(n=Count("id")).order_by()
    )  # fmt: skip
    for row in rows:
        per_day.setdefault(row["day"].isoformat(), {})[row["job_state"]] = row["n"]
    tasks = TaskExecution.objects.filter(organization_id=org_id, ended_at__gte=since)
    task_secs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for job_type, task_type, started, ended in (
        tasks.filter(started_at__isnull=False)
        .order_by("-ended_at")
        .values_list("job_execution__job_request__job_type", "task_type", "started_at", "ended_at")[:MAX_ROWS]
    ):
        if started is not None and ended is not None:  # always, by the filters: this tells mypy
            task_secs[(job_type, task_type)].append((ended - started).total_seconds())
    slowest = sorted(
        ({"job_type": j, "task_type": t, "runs": len(v), "avg_secs": round(sum(v) / len(v), 3),
          "max_secs": round(max(v), 3)} for (j, t), v in task_secs.items()),
        key=lambda r: -cast(float, r["avg_secs"]),
    )[:TOP]  # fmt: skip
    failing = list(
        tasks.values("job_execution__job_request__job_type", "task_type")
        .annotate(failures=Count("id", filter=Q(task_state=TaskState.FAILED)), runs=Count("id"))
        .filter(failures__gt=0).order_by("-failures", "task_type")[:TOP]
    )  # fmt: skip
    return {
        "days": days,
        "since": since.isoformat(),
        "runs_per_day": [{"day": day, "counts": counts} for day, counts in sorted(per_day.items())],
        "job_types": [{"job_type": k, **v} for k, v in job_type_numbers(org_id, since).items()],
        "slowest_tasks": slowest,
        "most_failing_tasks": [
            {
                "job_type": r["job_execution__job_request__job_type"],
                "task_type": r["task_type"],
                "failures": r["failures"],
                "runs": r["runs"],
            }
            for r in failing
        ],  # fmt: skip
    }
