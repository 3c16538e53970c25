"""Error-code rules acting on real failures: a SHELL task whose output matches a rule gets its
error code (seen through the REST API), a RETRY_TASK rule retries a task that names no retry,
a RETRY_JOB rule retries the job, a hard failure stops the job's own retries, and SUSPEND_JOB
pauses the job."""

import pytest

from jobs.models import ErrorCode
from tests.engine.harness import wait_for_state
from tests.engine.test_scenarios import submit

# one mode is enough here: the rules act in the queen's one failure path, the same in both
pytestmark = pytest.mark.parametrize("cluster", ["standalone"], indirect=True)

CLONE = """\
job_type: clone
tasks:
- task_type: checkout
  method: SHELL
  script:
    - "echo 'fatal: could not read Username for https://github.com'"
    - exit 128
"""

FLAKY = """\
job_type: flaky-net
tasks:
- task_type: fetch
  method: SHELL
  script:
    - n=$(cat {{.Counter}} 2>/dev/null || echo 0); echo $((n+1)) > {{.Counter}}; [ "$n" -ge 2 ] || { echo "connection reset by peer"; exit 1; }
"""


def _rule(api, **fields):  # type: ignore[no-untyped-def]
    resp = api.post("/api/errors", fields, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()


def _task(api, request_id: int, task_type: str) -> dict:  # type: ignore[type-arg]
    body = api.get(f"/api/jobs/requests/{request_id}").json()
    return next(t for t in body["execution"]["tasks"] if t["task_type"] == task_type)


def test_matching_rule_sets_the_error_code(cluster, api, alice):
    _rule(api, error_code="ERR_GIT_AUTH", regex=r"could not read Username", job_type="clone")
    _rule(api, error_code="ERR_OTHER_JOB", regex=r"fatal", job_type="deploy")  # out of scope
    request = submit(api, alice, CLONE)
    done = wait_for_state(request.pk)
    assert done.job_state == "FAILED"
    task = _task(api, request.pk, "checkout")
    assert task["task_state"] == "FAILED" and task["exit_code"] == "128"
    assert task["error_code"] == "ERR_GIT_AUTH"
    assert api.get(f"/api/jobs/requests/{request.pk}").json()["error_code"] == "ERR_GIT_AUTH"


def test_global_rule_applies_and_own_rule_wins(cluster, api, alice):
    ErrorCode.objects.create(error_code="ERR_GLOBAL_GIT", regex="could not read")
    request = submit(api, alice, CLONE)
    wait_for_state(request.pk)
    assert _task(api, request.pk, "checkout")["error_code"] == "ERR_GLOBAL_GIT"
    _rule(api, error_code="ERR_OWN_GIT", regex="could not read")
    request = submit(api, alice, CLONE)
    wait_for_state(request.pk)
    assert _task(api, request.pk, "checkout")["error_code"] == "ERR_OWN_GIT"


def test_retry_task_rule_retries_until_success(cluster, api, alice, tmp_path):
    _rule(api, error_code="ERR_NETWORK", regex="connection reset", action="RETRY_TASK", retry=3)
    request = submit(api, alice, FLAKY, Counter=str(tmp_path / "count"))
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    task = _task(api, request.pk, "fetch")
    assert task["task_state"] == "COMPLETED" and task["retried"] == 2
    assert (tmp_path / "count").read_text().strip() == "3"


def test_without_a_rule_the_same_task_fails_once(cluster, api, alice, tmp_path):
    request = submit(api, alice, FLAKY, Counter=str(tmp_path / "count"))
    done = wait_for_state(request.pk)
    assert done.job_state == "FAILED"
    assert (tmp_path / "count").read_text().strip() == "1"


def test_retry_job_rule_retries_the_job(cluster, api, alice, tmp_path):
    _rule(api, error_code="ERR_NETWORK", regex="connection reset", action="RETRY_JOB", retry=2)
    request = submit(api, alice, FLAKY, Counter=str(tmp_path / "count"))
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert done.retried == 2
    assert (tmp_path / "count").read_text().strip() == "3"


def test_hard_failure_stops_retries(cluster, api, alice, tmp_path):
    _rule(api, error_code="ERR_FATAL_NET", regex="connection reset", hard_failure=True)
    text = FLAKY.replace("  method: SHELL\n", "  method: SHELL\n  retry: 3\n")
    request = submit(api, alice, "retry: 2\n" + text, Counter=str(tmp_path / "count"))
    done = wait_for_state(request.pk)
    assert done.job_state == "FAILED" and done.retried == 0
    assert done.error_code == "ERR_FATAL_NET"
    assert (tmp_path / "count").read_text().strip() == "1"


def test_suspend_job_pauses_and_resume_runs_the_task_again(cluster, api, alice, tmp_path):
    _rule(api, error_code="ERR_WAIT_FOR_HUMAN", regex="connection reset", action="SUSPEND_JOB")
    request = submit(api, alice, FLAKY, Counter=str(tmp_path / "count"))
    paused = wait_for_state(request.pk, ["PAUSED"])
    assert "ERR_WAIT_FOR_HUMAN" in paused.state_message
    assert (tmp_path / "count").read_text().strip() == "1"
    (tmp_path / "count").write_text("2")  # the person fixes the cause
    assert api.post(f"/api/jobs/requests/{request.pk}/resume").status_code == 200
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
