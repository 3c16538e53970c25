"""The stats API and the dashboard read a window of the history, not all of it (docs/performance.md,
W7): without ``from`` the stats cover the last 24 hours, the dashboard's finished counts the
requests of the last 24 hours, and on PostgreSQL both are ranges of an index."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from jobs.domain import finished_counts
from jobs.models import JobExecution, JobRequest
from jobs.reports import job_type_numbers
from jobs.states import JobState
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: windowed
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
"""


def history(api, alice) -> list[int]:  # type: ignore[no-untyped-def]
    """Two requests finished today, three a week ago (two of them FAILED), one pending a week ago."""
    assert upload(api, DEFINITION).status_code == 201
    ids = [
        api.post("/api/jobs/requests", {"job_type": "windowed"}, format="json").json()["id"] for _ in range(6)
    ]
    week_ago = timezone.now() - timedelta(days=7)
    JobRequest.objects.filter(pk__in=ids[:2]).update(job_state=JobState.COMPLETED)
    JobRequest.objects.filter(pk=ids[2]).update(job_state=JobState.COMPLETED, created_at=week_ago)
    JobRequest.objects.filter(pk__in=ids[3:5]).update(job_state=JobState.FAILED, created_at=week_ago)
    JobRequest.objects.filter(pk=ids[5]).update(created_at=week_ago)  # still PENDING
    finished_counts.rebuild(alice.org_id)  # states written around transitions: counted again
    return ids


def counts(rows: list[dict]) -> dict[str, int]:  # type: ignore[type-arg]
    return {r["job_state"]: r["counts"] for r in rows}


def test_stats_default_to_the_last_day_and_keep_their_fields(api, alice) -> None:  # type: ignore[no-untyped-def]
    history(api, alice)
    rows = api.get("/api/jobs/requests/stats").json()
    assert counts(rows) == {"COMPLETED": 2}
    assert set(rows[0]) == {"job_type", "job_state", "counts", "success_rate", "p50_secs", "p95_secs"}
    assert rows[0]["success_rate"] == 1.0
    since = (timezone.now() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    everything = api.get(f"/api/jobs/requests/stats?from={since}").json()
    assert counts(everything) == {"COMPLETED": 3, "FAILED": 2, "PENDING": 1}
    assert everything[0]["success_rate"] == 0.6
    # ``to`` alone: the day before it
    before = (timezone.now() - timedelta(days=6, hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert counts(api.get(f"/api/jobs/requests/stats?to={before}").json()) == {
        "COMPLETED": 1, "FAILED": 2, "PENDING": 1,
    }  # fmt: skip
    assert api.get("/api/jobs/requests/stats?from=last-week").status_code == 400


def test_dashboard_counts_open_requests_and_the_last_days_finished_ones(api, alice) -> None:  # type: ignore[no-untyped-def]
    history(api, alice)
    client = Client()
    client.force_login(alice.user)
    page = client.get("/").content.decode()
    assert 'id="count-waiting">1<' in page  # pending for a week: still waiting
    assert 'id="count-finished">2<' in page and 'id="count-failed">0<' in page
    assert "100%" in page  # success of the last 24 h
    assert "finished, last 24 h" in page


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's")
def test_the_windows_are_index_ranges(alice) -> None:  # type: ignore[no-untyped-def]
    since = timezone.now() - timedelta(hours=24)
    requests = JobRequest.objects.filter(organization_id=alice.org_id, created_at__gte=since)
    stats = requests.values("job_type", "job_state").order_by()
    executions = JobExecution.objects.filter(
        organization_id=alice.org_id,
        ended_at__isnull=False,
        job_state=JobState.COMPLETED,
        ended_at__gte=since,
    ).order_by("-ended_at")
    with connection.cursor() as cur:
        cur.execute("SET enable_seqscan = off")  # empty tables: the planner would scan them whole
        try:
            assert "jobreq_org_created" in stats.explain()
            assert "jobexec_org_ended" in executions.explain()
        finally:
            cur.execute("RESET enable_seqscan")
    job_type_numbers(alice.org_id, since=since)  # the queries the stats run
