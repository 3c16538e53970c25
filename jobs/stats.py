"""Counts of requests by state, per job definition and per organization."""

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Count, Sum

from jobs.domain import finished_counts
from jobs.models import FinishedCount, JobDefinition, JobRequest
from jobs.states import JobState


def definition_stats(definition: JobDefinition) -> dict[str, Any]:
    counts = {state.value: 0 for state in JobState}
    for (_, state), n in request_counts(definition.organization_id, job_type=definition.job_type).items():
        counts[state] = n
    finished = counts[JobState.COMPLETED] + counts[JobState.FAILED]
    return {
        "job_type": definition.job_type,
        "counts": counts,
        "running": counts[JobState.READY] + counts[JobState.STARTED] + counts[JobState.EXECUTING],
        "pending": counts[JobState.PENDING],
        "succeeded": counts[JobState.COMPLETED],
        "failed": counts[JobState.FAILED],
        "success_ratio": (counts[JobState.COMPLETED] / finished) if finished else 0.0,
        "max_concurrency": definition.max_concurrency,
        "disabled": definition.disabled,
    }


# -- windows and totals of the history ------------------------------------------------------------
# Finished requests are read from their counts per hour (FinishedCount, kept by
# jobs.domain.finished_counts); the open ones, few at any time, from the requests' state index.
# A window whose ends are not on the hour counts its partial first and last hours from the
# requests (an index range of at most an hour each): the figures are exact either way.

Key = tuple[str, str]  # (job type, state)
# a list filtered by what no count is kept of counts its rows up to this many (its TotalRecords)
COUNT_CAP = 10_000


def _ceil_hour(when: datetime) -> datetime:
    start = finished_counts.hour_of(when)
    return start if start == when else start + finished_counts.HOUR


def _grouped(qs: Any) -> Counter[Key]:
    rows = qs.values("job_type", "job_state").annotate(n=Count("id")).order_by()
    return Counter({(r["job_type"], r["job_state"]): r["n"] for r in rows})


def request_counts(
    org_id: int, *, start: datetime | None = None, end: datetime | None = None, job_type: str | None = None,
    states: Iterable[str] | None = None,
) -> Counter[Key]:  # fmt: skip
    """Requests of the organization created in [``start``, ``end``) (either may be open), per job
    type and state (of ``job_type`` and ``states`` only when given)."""
    wanted = {str(s) for s in states} if states is not None else {str(s) for s in JobState}
    final = sorted(wanted & set(finished_counts.FINAL))
    requests = JobRequest.objects.filter(organization_id=org_id)
    if job_type is not None:
        requests = requests.filter(job_type=job_type)
    if start is not None:
        requests = requests.filter(created_at__gte=start)
    if end is not None:
        requests = requests.filter(created_at__lt=end)
    out: Counter[Key] = Counter()
    open_states = sorted(wanted - set(finished_counts.FINAL))
    if open_states:
        out += _grouped(requests.filter(job_state__in=open_states))
    if not final:
        return out
    first = _ceil_hour(start) if start is not None else None  # whole hours: [first, last)
    last = finished_counts.hour_of(end) if end is not None else None
    if first is not None and last is not None and last <= first:  # within an hour or two
        return out + _grouped(requests.filter(job_state__in=final))
    counts = FinishedCount.objects.filter(organization_id=org_id, job_state__in=final)
    if job_type is not None:
        counts = counts.filter(job_type=job_type)
    # no window: the rows of every hour; a window: the rows of its hours
    hour = finished_counts.ALL_TIME
    counts = counts.filter(hour=hour) if first is None and last is None else counts.filter(hour__gt=hour)
    if first is not None:
        counts = counts.filter(hour__gte=first)
        if start is not None and start < first:
            out += _grouped(requests.filter(job_state__in=final, created_at__lt=first))
    if last is not None:
        counts = counts.filter(hour__lt=last)
        if end is not None and last < end:
            out += _grouped(requests.filter(job_state__in=final, created_at__gte=last))
    rows = counts.values("job_type", "job_state").annotate(total=Sum("n")).order_by()
    out += Counter({(r["job_type"], r["job_state"]): r["total"] for r in rows})
    return out


def list_total(org_id: int, requests: Any, *, start: datetime | None, end: datetime | None,
               job_type: str | None, states: Iterable[str] | None, uncounted_filter: bool) -> int:  # fmt: skip
    """The requests list's TotalRecords: exact from the counts when it is filtered only by type,
    state and creation time; else ``requests`` counted up to COUNT_CAP rows."""
    if uncounted_filter:
        return int(requests.order_by()[:COUNT_CAP].count())
    return sum(request_counts(org_id, start=start, end=end, job_type=job_type, states=states).values())


def stats_rows(
    org_id: int, start: datetime, end: datetime | None, durations: dict[str, Any]
) -> list[dict[str, Any]]:
    """The stats API's rows: counts per job type and state, each with its type's success rate
    and (from ``durations``) p50/p95 seconds."""
    counts = request_counts(org_id, start=start, end=end)
    rows = []
    for (job_type, state), n in sorted(counts.items()):
        succeeded, failed = counts[(job_type, "COMPLETED")], counts[(job_type, "FAILED")]
        p50, p95 = durations.get(job_type, (None, None))
        rows.append({"job_type": job_type, "job_state": state, "counts": n, "p50_secs": p50, "p95_secs": p95,
                     "success_rate": round(succeeded / (succeeded + failed), 4) if succeeded + failed else None})  # fmt: skip
    return rows
