"""Plans with real runs: a queen and two SHELL ants as processes over Redis and PostgreSQL.
The organization's concurrency holds requests PENDING with the reason (never more than the
limit at once); the tasks' cpu_secs come from the ants' measured time; the usage report adds
them up with the plan's cost factor; and the CPU quota then refuses submits (429)."""

import os
import time

import pytest

from artifacts.models import Artifact
from jobs.models import JobExecution, JobRequest, TaskExecution
from tests.conftest import upload
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.postgres_only

SLEEPER = """\
job_type: quota-sleep
tasks:
- task_type: nap
  method: SHELL
  script:
    - echo napping
    - sleep 1
"""
JOBS = 5


@pytest.fixture
def cluster(tmp_path, transactional_db, settings, monkeypatch, use_transport):  # type: ignore[no-untyped-def]
    from tests.artifacts.conftest import _configure

    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (the test runner starts Redis)")
    _configure("local", tmp_path, settings, monkeypatch)  # settings and the processes' environment
    c = Cluster("distributed", tmp_path, use_transport).start()
    yield c
    c.stop()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_concurrency_cpu_seconds_usage_and_cpu_quota_from_real_runs(cluster, alice, api):
    assert upload(api, SLEEPER).status_code in (200, 201)
    created = api.post("/api/subscriptions", {"policy": "BASIC", "max_concurrency": 2, "cost_factor": 2.5},
                       format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    plan_id = created.json()["id"]
    assert api.put(f"/api/orgs/{alice.org_id}", {"max_concurrency": 3}, format="json").status_code == 200
    submitted = api.post(
        "/api/jobs/requests/bulk", {"requests": [{"job_type": "quota-sleep"}] * JOBS}, format="json"
    )
    assert submitted.status_code == 201, submitted.content
    ids = [r["id"] for r in submitted.json()]

    reasons: set[str] = set()
    most_running = 0
    deadline = time.monotonic() + 180
    while True:
        rows = list(JobRequest.objects.filter(pk__in=ids).values_list("job_state", "state_message"))
        most_running = max(most_running, sum(state in ("READY", "STARTED", "EXECUTING") for state, _ in rows))
        reasons |= {message for state, message in rows if state == "PENDING" and message}
        if all(state in ("COMPLETED", "FAILED", "CANCELLED") for state, _ in rows):
            break
        assert time.monotonic() < deadline, (rows, cluster.processes.logs())
        time.sleep(0.05)
    assert [state for state, _ in rows] == ["COMPLETED"] * JOBS
    assert most_running <= 2
    assert "waiting: 2 of 2 concurrent jobs are running (the BASIC plan's max_concurrency)" in reasons
    executions = JobExecution.objects.filter(job_request_id__in=ids)
    spans = [(e.started_at.timestamp(), e.ended_at.timestamp()) for e in executions]
    assert len(spans) == JOBS and max_overlap(spans) <= 2  # exact: never more than two at once

    # cpu_secs: the ants' measured task time (a second of sleep and a little more), on the job too
    tasks = list(TaskExecution.objects.filter(job_execution__job_request_id__in=ids))
    assert len(tasks) == JOBS
    for task in tasks:
        assert 1.0 <= task.cpu_secs < 30, task.cpu_secs
        assert task.cost_factor == 0  # neither the executor nor the definition states one
    for execution in executions:
        assert execution.cpu_secs == pytest.approx(
            sum(t.cpu_secs for t in tasks if t.job_execution_id == execution.pk)
        )
    cpu = sum(t.cpu_secs for t in tasks)
    stored = sum(Artifact.objects.filter(organization_id=alice.org_id).values_list("size", flat=True))
    assert stored > 0  # the tasks' logs

    report = api.get("/api/orgs/usage_report").json()
    (org,) = report["organizations"]
    assert (org["organization"], org["jobs"], org["tasks"]) == ("acme", JOBS, JOBS)
    assert org["cpu_secs"] == pytest.approx(cpu, abs=0.01)
    assert org["cost"] == pytest.approx(cpu * 2.5, abs=0.01)  # no cost_factor of their own: the plan's
    assert org["storage_bytes"] == stored
    assert [(t["job_type"], t["jobs"], t["tasks"]) for t in org["job_types"]] == [("quota-sleep", JOBS, JOBS)]
    assert org["plan"]["max_concurrency"] == 2 and org["plan"]["cpu_secs_in_period"] is None
    assert api.post("/api/orgs/usage_report", {"to": "2000-01-01"}, format="json").json()["organizations"][0][
        "jobs"
    ] == 0  # fmt: skip

    # now over a CPU quota: submits are refused, naming the limit and the usage
    assert api.put(f"/api/subscriptions/{plan_id}", {"cpu_quota": 3}, format="json").status_code == 200
    refused = api.post("/api/jobs/requests", {"job_type": "quota-sleep"}, format="json")
    assert refused.status_code == 429, refused.content
    assert refused.json()["limit"] == "cpu_quota"
    assert f"used {cpu:.1f} CPU seconds since" in refused.json()["error"]
    assert "the BASIC plan's cpu_quota is 3" in refused.json()["error"]
    bulk = api.post("/api/jobs/requests/bulk", {"requests": [{"job_type": "quota-sleep"}]}, format="json")
    assert bulk.status_code == 429 and bulk.json()["limit"] == "cpu_quota"
    assert JobRequest.objects.filter(organization_id=alice.org_id).count() == JOBS
    assert api.get("/api/orgs/usage_report").json()["organizations"][0]["plan"]["cpu_secs_in_period"] == (
        pytest.approx(cpu, abs=0.01)
    )
