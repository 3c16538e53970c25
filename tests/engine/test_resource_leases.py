"""Job resource leases end to end on the distributed deployment (queen and two ants as processes
over Redis and the test database, PostgreSQL under hrun): a task that declares `resources`
waits for a lease, never more than the quota at once; it sees the resource's configs; leases are
released when the task fails or is cancelled, and freed when their lease timeout passes."""

import os
import time
from pathlib import Path

import pytest

from jobs.domain.logs import task_log_text
from jobs.models import JobRequest, JobResourceUse, TaskExecution
from jobs.states import JOB_TERMINAL
from tests.conftest import upload
from tests.engine.conftest import Cluster
from tests.engine.harness import wait_for_state

TERMINAL = {str(s) for s in JOB_TERMINAL}


@pytest.fixture
def deployment(tmp_path, transactional_db, use_transport):  # type: ignore[no-untyped-def]
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (scripts/test starts Redis)")
    c = Cluster("distributed", tmp_path, use_transport).start()
    yield c
    c.stop()


def resource(api, **fields) -> dict:  # type: ignore[no-untyped-def]
    resp = api.post("/api/jobs/resources", {"resource_type": "deploy-slot", **fields}, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()


def submit(api, job_type: str, **params: str) -> int:  # type: ignore[no-untyped-def]
    resp = api.post("/api/jobs/requests", {"job_type": job_type, "params": params}, format="json")
    assert resp.status_code in (200, 201), resp.content
    return int(resp.json()["id"])


def define(api, text: str) -> None:  # type: ignore[no-untyped-def]
    resp = upload(api, text)
    assert resp.status_code in (200, 201), resp.content


def task_state(request_id: int, task_type: str) -> str | None:
    task = TaskExecution.objects.filter(job_execution__job_request_id=request_id, task_type=task_type).first()
    return task.task_state if task else None


def task_of(request_id: int, task_type: str) -> TaskExecution:
    return TaskExecution.objects.get(job_execution__job_request_id=request_id, task_type=task_type)


def wait_until(check, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout:.0f}s")
        time.sleep(0.05)


def max_overlap(marks: Path) -> int:
    """The most tasks between their start and end marks at one moment."""
    edges: list[tuple[float, int]] = []
    for path in marks.iterdir():
        times = dict(line.split() for line in path.read_text().splitlines())
        edges += [(float(times["start"]), 1), (float(times["end"]), -1)]
    running = most = 0
    for _, step in sorted(edges):  # an end before a start at the same instant
        running += step
        most = max(most, running)
    return most


DEPLOY = """\
job_type: deploy-staging
max_concurrency: 10
tasks:
- task_type: deploy
  method: SHELL
  resources:
    resource_type: deploy-slot
    platform: staging
  script:
    - echo "start $(date +%s.%N)" >> {marks}/{{{{.JobID}}}}
    - sleep 1
    - echo "end $(date +%s.%N)" >> {marks}/{{{{.JobID}}}}
"""


def test_at_most_the_quota_runs_at_once_and_the_others_say_why(deployment, api, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    slot = resource(api, platform="staging", quota=2)
    define(api, DEPLOY.format(marks=marks))
    ids = [submit(api, "deploy-staging") for _ in range(6)]
    seen: set[str] = set()

    def all_ended() -> bool:
        rows = JobRequest.objects.filter(pk__in=ids).values_list("job_state", "state_message")
        seen.update(message for _, message in rows if message)
        return all(state in TERMINAL for state, _ in rows)

    wait_until(all_ended, "all ended", timeout=120)
    states = set(JobRequest.objects.filter(pk__in=ids).values_list("job_state", flat=True))
    assert states == {"COMPLETED"}
    # the ants have four slots: without the lease more than two would overlap
    assert len(list(marks.iterdir())) == 6
    assert max_overlap(marks) <= 2
    assert "task deploy: waiting for resource deploy-slot (staging) (2 of 2 leased)" in seen
    uses = JobResourceUse.objects.filter(job_resource_id=slot["id"])
    assert uses.count() == 6 and {u.job_request_id for u in uses} == set(ids)
    wait_until(lambda: not uses.filter(active=True).exists(), "all released", timeout=10)
    assert api.get(f"/api/jobs/resources/{slot['id']}").json()["remaining_quota"] == 2


CONFIGS = """\
job_type: uses-configs
tasks:
- task_type: plain
  method: SHELL
  resources:
    resource_type: deploy-slot
  script:
    - echo "host=$Host tmpl={{.Host}} token=$Token"
  on_completed: extracted
- task_type: extracted
  method: SHELL
  resources:
    resource_type: deploy-slot
    extract_config:
      properties: [Host]
      context_prefix: Staging_
  script:
    - echo "prefixed=$Staging_Host other=${Token:-unset}"
"""


def test_the_task_sees_the_resources_configs(deployment, api):
    resource(api, quota=1, configs=[{"name": "Host", "value": "staging.example"},
                                    {"name": "Token", "value": "tok-s3cret", "secret": True}])  # fmt: skip
    define(api, CONFIGS)
    request_id = submit(api, "uses-configs")
    done = wait_for_state(request_id, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    plain, extracted = task_of(request_id, "plain"), task_of(request_id, "extracted")
    wait_until(lambda: "host=" in task_log_text(plain.pk), "logged")
    wait_until(lambda: "prefixed=" in task_log_text(extracted.pk), "logged")
    log = task_log_text(plain.pk)
    assert "host=staging.example tmpl=staging.example token=" in log
    assert "tok-s3cret" not in log  # a secret config is masked like any secret
    assert "prefixed=staging.example other=unset" in task_log_text(extracted.pk)


HOLD = """\
job_type: hold-{name}
max_concurrency: 10
tasks:
- task_type: work
  method: SHELL
  resources:
    resource_type: deploy-slot
  script: ["{script}"]
"""


def test_a_failed_or_cancelled_task_releases_its_lease(deployment, api):
    slot = resource(api, quota=1)
    define(api, HOLD.format(name="fail", script="exit 3"))
    define(api, HOLD.format(name="long", script="sleep 60"))
    define(api, HOLD.format(name="quick", script="echo quick"))
    failed = submit(api, "hold-fail")
    assert wait_for_state(failed, timeout=60).job_state == "FAILED"
    # the failed task's lease does not hold up the next one
    long = submit(api, "hold-long")
    wait_until(lambda: task_state(long, "work") == "EXECUTING", "executing")
    quick = submit(api, "hold-quick")
    wait_until(
        lambda: "waiting for resource deploy-slot (1 of 1 leased)" in JobRequest.objects.get(pk=quick).state_message,
        "waiting",
    )  # fmt: skip
    assert JobRequest.objects.get(pk=quick).job_state in ("READY", "EXECUTING")
    assert task_of(quick, "work").task_state == "READY"
    assert api.post(f"/api/jobs/requests/{long}/cancel").status_code == 200
    assert wait_for_state(quick, timeout=60).job_state == "COMPLETED"
    assert JobRequest.objects.get(pk=long).job_state == "CANCELLED"
    uses = JobResourceUse.objects.filter(job_resource_id=slot["id"])
    wait_until(lambda: not uses.filter(active=True).exists(), "all released", timeout=10)
    assert not uses.filter(aborted=True).exists()
    assert sorted(uses.values_list("job_request_id", flat=True)) == sorted([failed, long, quick])


def test_a_lease_past_its_timeout_is_freed(deployment, api):
    slot = resource(api, quota=1, lease_timeout="2s")
    define(api, HOLD.format(name="stuck", script="sleep 60"))
    define(api, HOLD.format(name="quick", script="echo quick"))
    stuck = submit(api, "hold-stuck")
    wait_until(lambda: task_state(stuck, "work") == "EXECUTING", "executing")
    quick = submit(api, "hold-quick")
    assert wait_for_state(quick, timeout=60).job_state == "COMPLETED"
    # the stuck task still runs: its lease was aborted, not the task
    assert task_of(stuck, "work").task_state == "EXECUTING"
    use = JobResourceUse.objects.get(job_resource_id=slot["id"], job_request_id=stuck)
    assert use.aborted and not use.active
    api.post(f"/api/jobs/requests/{stuck}/cancel")


def test_leases_hold_across_a_queen_restart(processes, api, tmp_path):
    """Leases are rows: a queen killed while one task holds the only slot and another waits comes
    back to the same picture, and the waiting task runs only after the holder ended."""
    processes.start_queen()
    processes.start_ant("ant-a", ["a"], concurrency=4)
    processes.wait_ready()
    marks = tmp_path / "marks"
    marks.mkdir()
    resource(api, platform="staging", quota=1)
    define(api, DEPLOY.format(marks=marks).replace("sleep 1", "sleep 4"))
    holder = submit(api, "deploy-staging")
    wait_until(lambda: task_state(holder, "deploy") == "EXECUTING", "executing")
    waiter = submit(api, "deploy-staging")
    wait_until(lambda: "waiting for resource" in JobRequest.objects.get(pk=waiter).state_message, "waiting")
    processes.kill("queen")
    processes.start_queen()
    processes.wait_ready(["queen"])
    for request_id in (holder, waiter):
        assert wait_for_state(request_id, timeout=90).job_state == "COMPLETED"
    assert max_overlap(marks) == 1
