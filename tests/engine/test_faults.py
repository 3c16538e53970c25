"""Crashes and shutdowns of queen and ants, as separate processes over Redis and the database."""

import signal
import time
from pathlib import Path

from jobs.models import TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state

THREE_STEPS = """\
job_type: three-steps
tasks:
- task_type: one
  method: SHELL
  tags: [shared]
  script: ["echo one >> {{.Trace}}", "sleep {{.Sleep}}"]
  on_completed: two
- task_type: two
  method: SHELL
  tags: [shared]
  script: ["echo two >> {{.Trace}}", "sleep {{.Sleep}}"]
  on_completed: three
- task_type: three
  method: SHELL
  tags: [shared]
  script: ["echo three >> {{.Trace}}"]
"""


def _submit(api, member, trace: Path, sleep: str):  # type: ignore[no-untyped-def]
    assert upload(api, THREE_STEPS).status_code in (200, 201)
    return request_submit(org_id=member.org_id, user=member.user, job_type="three-steps",
                          params={"Trace": str(trace), "Sleep": sleep})  # fmt: skip


def _wait_for_line(trace: Path, line: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trace.exists() and line in trace.read_text().split():
            return
        time.sleep(0.05)
    raise AssertionError(f"{line!r} never appeared in {trace}")


def test_queen_killed_mid_job_resumes_and_applies_each_result_once(processes, api, alice, tmp_path):
    trace = tmp_path / "trace"
    processes.start_queen()
    processes.start_ant("ant-a", ["shared"])
    request = _submit(api, alice, trace, "1.5")
    _wait_for_line(trace, "one")
    processes.kill("queen")  # kill -9 while task one runs: its result arrives with no queen
    time.sleep(2.5)
    processes.start_queen("queen-2")
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", processes.logs()
    assert trace.read_text().split() == ["one", "two", "three"]  # each task ran exactly once
    tasks = TaskExecution.objects.filter(job_execution__job_request=request)
    assert sorted(t.task_type for t in tasks) == ["one", "three", "two"]
    assert all(t.attempt == 1 and t.task_state == "COMPLETED" for t in tasks)


def test_ant_killed_mid_task_reruns_on_the_other_ant(processes, api, alice, tmp_path):
    trace = tmp_path / "trace"
    processes.start_queen()
    processes.start_ant("ant-a", ["shared"])
    request = _submit(api, alice, trace, "3")
    _wait_for_line(trace, "one")
    processes.start_ant("ant-b", ["shared"])
    processes.kill("ant-a")
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", processes.logs()
    one = TaskExecution.objects.get(job_execution__job_request=request, task_type="one")
    assert one.ant_id == "ant-b" and one.attempt == 2
    assert trace.read_text().split().count("one") == 2


def test_sigterm_ant_finishes_in_flight_task_then_leaves(processes, api, alice, tmp_path):
    trace = tmp_path / "trace"
    processes.start_queen()
    ant = processes.start_ant("ant-a", ["shared"])
    request = _submit(api, alice, trace, "1.5")
    _wait_for_line(trace, "one")
    processes.start_ant("ant-b", ["shared"])
    ant.send_signal(signal.SIGTERM)
    assert ant.wait(timeout=30) == 0
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", processes.logs()
    one = TaskExecution.objects.get(job_execution__job_request=request, task_type="one")
    assert one.ant_id == "ant-a" and one.attempt == 1  # finished where it started, not re-run
    assert trace.read_text().split().count("one") == 1


def test_sigterm_queen_then_restart_resumes(processes, api, alice, tmp_path):
    trace = tmp_path / "trace"
    queen = processes.start_queen()
    processes.start_ant("ant-a", ["shared"])
    request = _submit(api, alice, trace, "1")
    _wait_for_line(trace, "one")
    queen.send_signal(signal.SIGTERM)
    assert queen.wait(timeout=30) == 0
    processes.start_queen("queen-2")
    assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED", processes.logs()
    assert trace.read_text().split() == ["one", "two", "three"]
