"""Crashes and shutdowns of queen and ants, as separate processes over Redis and the database."""

import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ants.protocol import AntRegistration
from jobs.models import TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state
from tests.engine.test_pipelines import make_engine
from tests.engine.test_pipelines import submit as batch_submit
from tests.faults.deploy import PROBE, overlaps, runs_of

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


def test_ant_restarted_under_its_id_has_its_tasks_sent_again_at_once(processes, api, alice, tmp_path):
    """A distributed ant killed and started again with the same ``--id`` well within the heartbeat
    timeout (issue 14): what the old process ran is sent again as new attempts, and never runs
    twice at once (the commands it left behind are killed, the requests it had read dropped)."""
    markers = tmp_path / "markers"
    assert upload(api, PROBE.format(markers=markers, tick=0.5)).status_code in (200, 201)
    processes._spawn("queen", ["queen", "--id", "queen-test", "--ant-timeout", "60"])
    processes.start_ant("ant-a", ["shared"])
    requests = [
        request_submit(org_id=alice.org_id, user=alice.user, job_type="fault-probe") for _ in range(3)
    ]
    deadline = time.monotonic() + 60
    while len(runs_of(markers)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    processes.kill("ant-a")  # two tasks running, the third waiting in its stream
    processes.start_ant("ant-a", ["shared"])
    for request in requests:
        assert wait_for_state(request.pk, timeout=40).job_state == "COMPLETED", processes.logs()
    assert not overlaps(runs_of(markers)), runs_of(markers)
    resent = TaskExecution.objects.filter(job_execution__job_request__in=requests, attempt=2)
    assert resent.count() >= 2 and all(t.ant_id == "ant-a" for t in resent)


@pytest.mark.django_db(transaction=True)
def test_a_new_start_time_frees_the_old_attempts_and_keeps_the_new_ones(alice):  # type: ignore[no-untyped-def]
    """The queen's side of a restart under the same id, step by step: attempts sent to the old
    process go back to READY and free their slots; those sent to the new one stay."""
    engine = make_engine(alice, capacity=2)
    old = engine.resources.incarnation("ant-b")
    first, second = batch_submit(alice), batch_submit(alice)
    assert engine.schedule() == 2  # both first tasks go to the ant in the start itself
    sent = engine.transport.read_tasks("ant-b", "c", 0, 10)
    assert len(sent) == 2 and {d.message.ant_started_at for d in sent} == {old}
    assert set(TaskExecution.objects.values_list("ant_started_at", flat=True)) == {old}
    assert engine.resources.choose("SHELL", []) is None  # both slots taken
    restarted = AntRegistration(ant_id="ant-b", max_capacity=2, methods=["SHELL"], ant_started_at=old + 5)
    assert engine.resources.heard(restarted)
    assert not engine.resources.heard(replace(restarted, created_at=restarted.created_at + 1))  # same run
    assert engine.recover_restarted_ants(["ant-b"]) == 2
    assert set(TaskExecution.objects.values_list("task_state", flat=True)) == {"READY"}
    assert engine.resources.choose("SHELL", []) == "ant-b"
    assert engine.dispatch_ready() == 2  # sent again, to the new process
    assert set(TaskExecution.objects.values_list("attempt", "ant_started_at")) == {(2, old + 5)}
    assert engine.recover_restarted_ants(["ant-b"]) == 0  # the new process's attempts stay
    late = replace(restarted, ant_started_at=old, created_at=restarted.created_at + 2)
    assert not engine.resources.heard(late)  # a heartbeat of the old process arriving late
    assert engine.resources.incarnation("ant-b") == old + 5
    assert {first.pk, second.pk} == set(
        TaskExecution.objects.values_list("job_execution__job_request_id", flat=True)
    )
