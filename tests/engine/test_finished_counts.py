"""Counts of finished requests per hour (``FinishedCount``, jobs/domain/finished_counts.py) stay
equal to a recount of the requests through every path a request ends, leaves its final state or
goes away: the queen's batches (complete, fail), the API's cancel and restart, retention; and
what reads them (the stats API, the dashboard, the list's TotalRecords, windows with ends off the
hour) answers as counting the requests would."""

from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from ants.messaging import InProcessTransport
from ants.protocol import STATUS_COMPLETED, STATUS_FAILED, AntRegistration, TaskResponse
from jobs.domain import finished_counts
from jobs.domain.specs import graph_of
from jobs.models import FinishedCount, JobRequest, TaskExecution
from jobs.queen.engine import Engine
from jobs.queen.resources import ResourceManager
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from jobs.services.retention import requests_prune
from jobs.stats import request_counts
from tests.engine.counts import kept, recounted

pytestmark = pytest.mark.django_db(transaction=True)

ONE = """\
job_type: counted
max_concurrency: 100
tasks:
- task_type: only
  method: SHELL
  script: ["true"]
"""


def by_state(org_id: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for (_, state, _), n in kept(org_id).items():
        out[state] += n
    return out


@pytest.fixture
def engine(alice):  # type: ignore[no-untyped-def]
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=ONE)
    graph_of(definition.pk)
    resources = ResourceManager()
    resources.heard(AntRegistration(ant_id="ant-c", max_capacity=20, methods=["SHELL"]))
    return Engine(InProcessTransport(), resources)


def run_to_the_end(alice, engine: Engine, outcomes: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    """One request per outcome, answered in one batch (the queen's path)."""
    ids = [
        request_submit(org_id=alice.org_id, user=alice.user, job_type="counted", params={}).pk
        for _ in outcomes
    ]
    engine.schedule(limit=50)
    engine.dispatch_ready()
    tasks = {t.job_execution.job_request_id: t for t in
             TaskExecution.objects.select_related("job_execution").filter(job_execution__job_request_id__in=ids)}  # fmt: skip
    answers = [
        TaskResponse(task_execution_id=tasks[rid].pk, job_request_id=rid, attempt=tasks[rid].attempt, ant_id="ant-c",
                     task_type="only", status=status, exit_code="0" if status == STATUS_COMPLETED else "1")
        for rid, status in zip(ids, outcomes, strict=True)
    ]  # fmt: skip
    assert engine.apply_responses(answers) == [True] * len(ids)
    return ids


def test_the_queens_batch_counts_completed_and_failed_jobs(alice, engine) -> None:  # type: ignore[no-untyped-def]
    ids = run_to_the_end(alice, engine, [STATUS_COMPLETED] * 4 + [STATUS_FAILED] * 2)
    assert Counter(JobRequest.objects.filter(pk__in=ids).values_list("job_state", flat=True)) == {
        "COMPLETED": 4, "FAILED": 2,
    }  # fmt: skip
    assert by_state(alice.org_id) == {"COMPLETED": 4, "FAILED": 2}
    assert kept(alice.org_id) == recounted(alice.org_id)


def test_cancel_and_restart_through_the_api_count_and_uncount(api, alice, engine) -> None:  # type: ignore[no-untyped-def]
    [done] = run_to_the_end(alice, engine, [STATUS_COMPLETED])
    pending = request_submit(org_id=alice.org_id, user=alice.user, job_type="counted", params={}).pk
    assert api.post(f"/api/jobs/requests/{pending}/cancel").status_code == 200
    assert by_state(alice.org_id) == {"COMPLETED": 1, "CANCELLED": 1}
    # a restart takes each out of its final state: no longer counted
    for rid in (done, pending):
        assert api.post(f"/api/jobs/requests/{rid}/restart").status_code == 200, rid
    assert JobRequest.objects.get(pk=done).job_state == "PENDING"
    assert by_state(alice.org_id) == {}
    assert kept(alice.org_id) == recounted(alice.org_id) == {}
    # a cancel refused (already cancelled) counts nothing
    assert api.post(f"/api/jobs/requests/{pending}/cancel").status_code == 200
    assert api.post(f"/api/jobs/requests/{pending}/cancel").status_code == 400
    assert by_state(alice.org_id) == {"CANCELLED": 1}
    assert kept(alice.org_id) == recounted(alice.org_id)


def test_retention_uncounts_what_it_deletes_and_drops_empty_rows(alice, engine) -> None:  # type: ignore[no-untyped-def]
    old = run_to_the_end(alice, engine, [STATUS_COMPLETED, STATUS_COMPLETED, STATUS_FAILED])
    new = run_to_the_end(alice, engine, [STATUS_COMPLETED])
    long_ago = timezone.now() - timedelta(days=100)
    # written around transitions (as a bulk load would be): the counts are rebuilt after it
    JobRequest.objects.filter(pk__in=old).update(created_at=long_ago, updated_at=long_ago)
    assert kept(alice.org_id) != recounted(alice.org_id)
    call_command("recount_finished")
    assert kept(alice.org_id) == recounted(alice.org_id)
    assert requests_prune(older_than=timedelta(days=90)).requests == 3
    assert by_state(alice.org_id) == {"COMPLETED": 1}
    assert kept(alice.org_id) == recounted(alice.org_id)
    assert FinishedCount.objects.filter(n=0).count() == 0  # the old hour's rows went
    assert JobRequest.objects.filter(pk__in=new).count() == 1


def test_windows_and_totals_equal_counting_the_requests(api, alice, engine) -> None:  # type: ignore[no-untyped-def]
    ids = run_to_the_end(alice, engine, [STATUS_COMPLETED] * 5 + [STATUS_FAILED] * 3)
    open_ = request_submit(org_id=alice.org_id, user=alice.user, job_type="counted", params={}).pk
    # spread over hours, off the hour: 10:20, 10:50, 11:10, 12:40, ... of a day two days ago
    base = (timezone.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    minutes = [20, 50, 70, 160, 161, 300, 301, 400]
    for rid, m in zip(ids, minutes, strict=True):
        JobRequest.objects.filter(pk=rid).update(created_at=base + timedelta(minutes=m))
    JobRequest.objects.filter(pk=open_).update(created_at=base + timedelta(minutes=100))
    finished_counts.rebuild(alice.org_id)

    def direct(start: datetime | None, end: datetime | None) -> Counter[tuple[str, str]]:
        qs = JobRequest.objects.filter(organization_id=alice.org_id)
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lt=end)
        return Counter({(r["job_type"], r["job_state"]): r["n"]
                        for r in qs.values("job_type", "job_state").annotate(n=Count("id")).order_by()})  # fmt: skip

    at = [base + timedelta(minutes=m) for m in (0, 15, 20, 21, 60, 65, 160, 161, 170, 240, 301, 302, 500)]
    windows = [(None, None), *((s, None) for s in at), *((None, e) for e in at)]
    windows += [(s, e) for s in at for e in at if s < e]
    for start, end in windows:
        assert request_counts(alice.org_id, start=start, end=end) == direct(start, end), (start, end)
    # by state and type, as the list filters them
    assert sum(request_counts(alice.org_id, states=["FAILED"]).values()) == 3
    assert sum(request_counts(alice.org_id, job_type="other").values()) == 0

    # the API and the page that read them
    assert api.get("/api/jobs/requests").json()["TotalRecords"] == 9
    assert api.get("/api/jobs/requests?job_state=FAILED,PENDING").json()["TotalRecords"] == 4
    since = (base + timedelta(minutes=65)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (base + timedelta(minutes=301)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # created 11:10, 11:40 (pending), 12:40, 12:41 (completed) and 15:00 (failed)
    assert api.get(f"/api/jobs/requests?from={since}&to={until}").json()["TotalRecords"] == 5
    assert api.get(f"/api/jobs/requests?from={since}&job_state=COMPLETED").json()["TotalRecords"] == 3
    assert api.get(f"/api/jobs/requests?from={since}&to={until}&job_group=none").json()["TotalRecords"] == 0
    stats = api.get(f"/api/jobs/requests/stats?from={since}&to={until}").json()
    assert {(r["job_state"], r["counts"]) for r in stats} == {("COMPLETED", 3), ("FAILED", 1), ("PENDING", 1)}
    assert {r["success_rate"] for r in stats} == {0.75}
    JobRequest.objects.filter(pk=ids[0]).update(created_at=timezone.now() - timedelta(minutes=30))
    finished_counts.rebuild(alice.org_id)
    client = Client()
    client.force_login(alice.user)
    page = client.get("/").content.decode()
    assert 'id="count-finished">1<' in page and 'id="count-waiting">1<' in page
