"""Cancelling one task (``POST /api/jobs/requests/{id}/tasks/{task_type}/cancel``) through the
REST API on a queen and ants, standalone and distributed: the command is killed on its ant, the
task ends CANCELLED, and the job follows its on_failed path (or fails), never retrying it."""

import time

from ants.protocol import STATUS_COMPLETED, TaskResponse
from jobs.domain.messaging import get_transport
from jobs.models import JobRequest, TaskExecution
from tests.engine.harness import wait_for_state
from tests.engine.test_control import define, lines, submit, wait_until

CUT = """\
job_type: cut-{name}
tasks:
- task_type: stuck
  method: SHELL
  retry: 2
  script: ["echo started >> {{{{.Trace}}}}", "sleep 4", "echo finished > {{{{.Marker}}}}"]
  on_completed: after
{on_failed}- task_type: after
  method: SHELL
  script: ["echo after >> {{{{.Trace}}}}"]
{cleanup}"""
CLEANUP = """\
- task_type: cleanup
  method: SHELL
  script: ["sleep 1", "echo cleanup >> {{.Trace}}"]
"""


def cut_job(api, name: str, with_cleanup: bool) -> str:  # type: ignore[no-untyped-def]
    return define(api, CUT.format(name=name, on_failed="  on_failed: cleanup\n" if with_cleanup else "",
                                  cleanup=CLEANUP if with_cleanup else ""))  # fmt: skip


def cancel(api, request_id: int, task_type: str):  # type: ignore[no-untyped-def]
    return api.post(f"/api/jobs/requests/{request_id}/tasks/{task_type}/cancel")


def task(request_id: int, task_type: str) -> TaskExecution:
    return TaskExecution.objects.get(job_execution__job_request_id=request_id, task_type=task_type)


def executing(request_id: int, task_type: str) -> TaskExecution:
    return wait_until(
        lambda: TaskExecution.objects.filter(
            job_execution__job_request_id=request_id, task_type=task_type, task_state="EXECUTING"
        ).first(),
        timeout=60, what=f"{task_type} executing",
    )  # fmt: skip


def test_cancelled_task_follows_on_failed_and_its_late_answer_changes_nothing(cluster, api, alice, tmp_path):
    job = cut_job(api, "cleanup", with_cleanup=True)
    trace, marker = tmp_path / "trace", tmp_path / "marker"
    request = submit(alice, job, params={"Trace": str(trace), "Marker": str(marker)})
    running = executing(request.pk, "stuck")
    wait_until(lambda: "started" in lines(trace), what="the command running")
    resp = cancel(api, request.pk, "stuck")
    assert resp.status_code == 200, resp.content
    assert resp.json()["task_state"] == "CANCELLED" and resp.json()["error_code"] == "ERR_TASK_CANCELLED"
    # the killed attempt's answer, arriving late, is stale: nothing follows from it
    get_transport().send_response(TaskResponse(
        task_execution_id=running.pk, job_request_id=request.pk, attempt=running.attempt, ant_id=running.ant_id,
        task_type="stuck", status=STATUS_COMPLETED, exit_code="0",
    ))  # fmt: skip
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", done.error_message
    stuck = task(request.pk, "stuck")
    assert (stuck.task_state, stuck.retried, stuck.attempt) == ("CANCELLED", 0, 1)
    assert lines(trace) == ["started", "cleanup"]  # on_failed ran, on_completed did not
    # the ant killed the command: what it would write after its sleep never appears
    time.sleep(5)
    assert not marker.exists()
    assert lines(trace) == ["started", "cleanup"]
    assert task(request.pk, "stuck").task_state == "CANCELLED"
    # the task has ended: a second cancel is refused naming its state
    again = cancel(api, request.pk, "stuck")
    assert again.status_code == 409 and "CANCELLED" in again.json()["error"], again.content


def test_cancelled_task_without_on_failed_fails_the_job_without_retry(cluster, api, alice, tmp_path):
    job = cut_job(api, "plain", with_cleanup=False)
    trace, marker = tmp_path / "trace", tmp_path / "marker"
    request = submit(alice, job, params={"Trace": str(trace), "Marker": str(marker)})
    executing(request.pk, "stuck")
    assert cancel(api, request.pk, "stuck").status_code == 200
    done = wait_for_state(request.pk, timeout=60)
    assert (done.job_state, done.error_code) == ("FAILED", "ERR_TASK_CANCELLED")
    stuck = task(request.pk, "stuck")
    assert (stuck.task_state, stuck.retried) == ("CANCELLED", 0)  # retry: 2 is not used
    assert JobRequest.objects.get(pk=request.pk).retried == 0
    assert not TaskExecution.objects.filter(job_execution__job_request=request, task_type="after").exists()


def test_task_cancel_answers(transactional_db, api, bob_api, alice):
    """404 for an unknown request, task or another organization's request; 409 for a task that
    is not running, naming its state."""
    job = cut_job(api, "answers", with_cleanup=False)
    request = submit(alice, job, params={"Trace": "t", "Marker": "m"})  # no queen runs: it stays PENDING
    assert cancel(api, 999_999, "stuck").status_code == 404
    assert cancel(api, request.pk, "nope").status_code == 404
    assert cancel(bob_api, request.pk, "stuck").status_code == 404
    not_started = cancel(api, request.pk, "stuck")
    assert not_started.status_code == 409 and "has not started" in not_started.json()["error"]
