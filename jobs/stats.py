"""Counts of requests by state, per job definition and per organization."""

from typing import Any

from django.db.models import Count

from jobs.models import JobDefinition, JobRequest
from jobs.states import JobState


def _by_state(qs: Any) -> dict[str, int]:
    counts = {state.value: 0 for state in JobState}
    for row in qs.values("job_state").annotate(n=Count("id")):
        counts[row["job_state"]] = row["n"]
    return counts


def definition_stats(definition: JobDefinition) -> dict[str, Any]:
    qs = JobRequest.objects.filter(organization_id=definition.organization_id, job_type=definition.job_type)
    counts = _by_state(qs)
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
