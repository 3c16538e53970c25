"""The finished counts as kept (``FinishedCount``) and as the requests say, for tests that end
jobs through the product and check both agree."""

from collections import Counter
from datetime import UTC, datetime

from django.db.models import Count
from django.db.models.functions import TruncHour

from jobs.domain import finished_counts
from jobs.models import FinishedCount, JobRequest

CountKey = tuple[str, str, datetime]


def kept(org_id: int) -> dict[CountKey, int]:
    """The counts as kept (rows counting nothing left out)."""
    rows = FinishedCount.objects.filter(organization_id=org_id).exclude(n=0)
    hours = {(r.job_type, r.job_state, r.hour.astimezone(UTC)): r.n for r in rows}
    # the rows of every hour hold the sums of the hours' rows
    totals: Counter[tuple[str, str]] = Counter()
    for (job_type, state, hour), n in hours.items():
        if hour != finished_counts.ALL_TIME:
            totals[(job_type, state)] += n
    assert totals == {(t, s): n for (t, s, hour), n in hours.items() if hour == finished_counts.ALL_TIME}
    return {key: n for key, n in hours.items() if key[2] != finished_counts.ALL_TIME}


def recounted(org_id: int) -> dict[CountKey, int]:
    """The counts as the requests say."""
    rows = (
        JobRequest.objects.filter(organization_id=org_id, job_state__in=finished_counts.FINAL)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("job_type", "job_state", "hour").annotate(n=Count("id")).order_by()
    )  # fmt: skip
    return {(r["job_type"], r["job_state"], r["hour"].astimezone(UTC)): r["n"] for r in rows}
