"""Several queens at once (processes over Redis and the database): one schedules, all supervise."""

import time

from jobs.models import JobExecution, JobRequest, QueenLease
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state

LIMITED = """\
job_type: limited
max_concurrency: 2
tasks:
- task_type: work
  method: SHELL
  script: ["sleep 0.4"]
  on_completed: more
- task_type: more
  method: SHELL
  script: ["true"]
"""

CRON = """\
job_type: ticker
cron_trigger: "* * * * * *"
tasks:
- task_type: tick
  method: SHELL
  script: ["true"]
"""


def _cluster(processes) -> None:  # type: ignore[no-untyped-def]
    processes.start_queen("queen-1", queen_id="queen-1")
    processes.start_queen("queen-2", queen_id="queen-2")
    processes.start_ant("ant-a", ["shared"], concurrency=3)
    processes.start_ant("ant-b", ["shared"], concurrency=3)
    processes.wait_ready()


def _peak_overlap(requests) -> int:  # type: ignore[no-untyped-def]
    spans = JobExecution.objects.filter(job_request__in=requests).values_list("started_at", "ended_at")
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    load = peak = 0
    for _, delta in events:
        load += delta
        peak = max(peak, load)
    return peak


def test_two_queens_never_exceed_max_concurrency(processes, api, alice):
    _cluster(processes)
    assert upload(api, LIMITED).status_code == 201
    requests = [request_submit(org_id=alice.org_id, user=alice.user, job_type="limited") for _ in range(10)]
    for request in requests:
        assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED", processes.logs()
    assert _peak_overlap(requests) == 2


def _wait_for_leader() -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lease = QueenLease.objects.filter(name="scheduler").first()
        if lease is not None:
            return lease.holder
        time.sleep(0.1)
    raise AssertionError("no queen took the scheduler lease")


def test_two_queens_create_each_cron_tick_once(processes, api, alice):
    _cluster(processes)
    _wait_for_leader()
    assert upload(api, CRON).status_code == 201
    deadline = time.monotonic() + 20
    while JobRequest.objects.filter(job_type="ticker").count() < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    api.post("/api/jobs/definitions/ticker/disable")
    ticks = list(JobRequest.objects.filter(job_type="ticker").values_list("scheduled_at", flat=True))
    assert len(ticks) >= 4, processes.logs()
    assert len(ticks) == len(set(ticks))


def test_killing_the_leader_hands_scheduling_over(processes, api, alice):
    _cluster(processes)
    assert upload(api, LIMITED).status_code == 201
    leader = _wait_for_leader()
    processes.kill(leader)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="limited")
    wait_for_state(request.pk, ["READY", "EXECUTING", "COMPLETED"], timeout=60)  # only against hanging
    assert QueenLease.objects.get(name="scheduler").holder != leader
    assert wait_for_state(request.pk, timeout=30).job_state == "COMPLETED"
