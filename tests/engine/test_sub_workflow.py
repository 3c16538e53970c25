"""``sub_workflow`` on FORK_JOB through the REST API on a queen and ants, standalone and
distributed: only ``input_params`` reach the child (never a secret), ``output_variables`` come
back to the parent's context (all of it when none are named), ``wait_for_completion`` makes the
fork task end with its child, cancelling the parent cancels the child, and a parent under
``max_concurrency: 1`` may fork its own job type."""

import pytest

from jobs.models import JobRequest, JobRequestParam, TaskExecution
from tests.engine.harness import wait_for_state
from tests.engine.test_control import define, lines, wait_until

SECRET = "tok-5e3c2a1b"

CHILD = """\
job_type: sw-child
tasks:
- task_type: work
  method: SHELL
  script:
    - echo "child {{.source_table}} leak=[{{.Leak}}]" >> {{.Trace}}
    - sleep {{.Sleep}}
    - echo "::add-job-context row_count::42"
    - echo "::add-job-context status::ok"
    - exit {{.Code}}
"""

WAITING_PARENT = """\
job_type: sw-parent
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: sw-child
  variables: {NotForwarded: nope}
  sub_workflow:
    input_params:
      - {name: source_table, value: "{{.parent_table}}"}
      - {name: Trace, value: "{{.Trace}}"}
      - {name: Code, value: "{{.Code}}"}
      - {name: Sleep, value: "{{.Sleep}}"}
      - {name: Leak, value: "{{.Token}}"}
    output_variables:
      - {name: row_count, value: etl_row_count}
    wait_for_completion: true
  on_completed: after
  on_failed: handle
- task_type: after
  method: SHELL
  script: ["echo after rows={{.etl_row_count}} >> {{.Trace}}"]
- task_type: handle
  method: SHELL
  script: ["echo handled >> {{.Trace}}"]
"""

AWAITING_PARENT = """\
job_type: sw-await
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: sw-child
  sub_workflow:
    input_params:
      - {name: Trace, value: "{{.Trace}}"}
      - {name: source_table, value: plain}
      - {name: Code, value: "0"}
      - {name: Sleep, value: "0"}
      - {name: Leak, value: ""}
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork]
  on_completed: after
- task_type: after
  method: SHELL
  script: ["echo after rows={{.row_count}} status={{.status}} >> {{.Trace}}"]
"""


def submit(api, job_type: str, params: dict[str, str], secret: dict[str, str] | None = None) -> int:  # type: ignore[no-untyped-def]
    body = [{"name": k, "value": v} for k, v in params.items()]
    body += [{"name": k, "value": v, "secret": True} for k, v in (secret or {}).items()]
    resp = api.post("/api/jobs/requests", {"job_type": job_type, "params": body}, format="json")
    assert resp.status_code == 201, resp.content
    return int(resp.json()["id"])


def child_of(parent_id: int) -> JobRequest:
    return wait_until(lambda: JobRequest.objects.filter(parent_id=parent_id).first(), what="the child")


@pytest.mark.parametrize(("code", "outcome"), [("0", "after"), ("3", "handled")])
def test_wait_for_completion_maps_params_in_and_outputs_out(cluster, api, alice, tmp_path, code, outcome):
    define(api, CHILD)
    define(api, WAITING_PARENT)
    trace = tmp_path / "trace"
    parent_id = submit(api, "sw-parent", {"parent_table": "orders", "Trace": str(trace), "Code": code, "Sleep": "0"},
                       secret={"Token": SECRET})  # fmt: skip
    parent = wait_for_state(parent_id, timeout=60)
    assert parent.job_state == "COMPLETED", parent.error_message
    child = JobRequest.objects.get(parent_id=parent_id)
    assert child.job_state == ("COMPLETED" if code == "0" else "FAILED")
    # only input_params are forwarded (not the task's variables), and no secret among them
    params = dict(JobRequestParam.objects.filter(job_request=child).values_list("name", "value"))
    assert set(params) == {"source_table", "Trace", "Code", "Sleep", "Leak"}
    assert SECRET not in str(params) and SECRET not in trace.read_text()
    fork = TaskExecution.objects.get(job_execution__job_request_id=parent_id, task_type="fork")
    context = parent.last_execution.context
    if code == "0":
        # the fork task waited for its child: the next task saw the promoted output
        assert fork.task_state == "COMPLETED"
        assert lines(trace)[-1:] == ["rows=42"] and "child orders" in trace.read_text()
        assert context["etl_row_count"] == "42" and "status" not in context and "row_count" not in context
    else:
        assert (fork.task_state, fork.error_code) == ("FAILED", "ERR_FORKED_JOB_FAILED")
        assert lines(trace)[-1] == "handled"


def test_without_output_variables_the_whole_child_context_is_promoted(cluster, api, alice, tmp_path):
    define(api, CHILD)
    define(api, AWAITING_PARENT)
    trace = tmp_path / "trace"
    parent = wait_for_state(submit(api, "sw-await", {"Trace": str(trace)}), timeout=60)
    assert parent.job_state == "COMPLETED", parent.error_message
    assert "status=ok" in trace.read_text() and "rows=42" in trace.read_text()
    assert parent.last_execution.context["row_count"] == "42"


def test_cancelling_the_parent_cancels_a_waited_for_child(cluster, api, alice, tmp_path):
    define(api, CHILD)
    define(api, WAITING_PARENT)
    trace = tmp_path / "trace"
    parent_id = submit(
        api, "sw-parent", {"parent_table": "t", "Trace": str(trace), "Code": "0", "Sleep": "30"}
    )
    child = child_of(parent_id)
    wait_until(
        lambda: "child" in trace.read_text() if trace.exists() else False, timeout=60, what="child running"
    )
    assert api.post(f"/api/jobs/requests/{parent_id}/cancel").status_code == 200
    assert wait_for_state(child.pk, timeout=30).job_state == "CANCELLED"
    assert JobRequest.objects.get(pk=parent_id).job_state == "CANCELLED"


def test_cancelling_the_waiting_fork_task_cancels_its_child(cluster, api, alice, tmp_path):
    define(api, CHILD)
    define(api, WAITING_PARENT)
    trace = tmp_path / "trace"
    parent_id = submit(
        api, "sw-parent", {"parent_table": "t", "Trace": str(trace), "Code": "0", "Sleep": "30"}
    )
    child = child_of(parent_id)
    resp = api.post(f"/api/jobs/requests/{parent_id}/tasks/fork/cancel")
    assert resp.status_code == 200, resp.content
    assert wait_for_state(child.pk, timeout=30).job_state == "CANCELLED"
    parent = wait_for_state(parent_id, timeout=60)
    assert parent.job_state == "COMPLETED" and lines(trace)[-1] == "handled"  # its on_failed path


SELFISH = """\
job_type: selfish
max_concurrency: 1
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: selfish
  except: '{{ if eq .Depth "1" }}true{{ end }}'
  sub_workflow:
    input_params:
      - {name: Depth, value: "1"}
      - {name: Tag, value: child}
      - {name: Trace, value: "{{.Trace}}"}
    wait_for_completion: true
  on_completed: work
- task_type: work
  method: SHELL
  script: ["echo {{.Tag}}-{{.Depth}} >> {{.Trace}}"]
"""


def test_a_parent_under_max_concurrency_one_may_fork_its_own_job_type(cluster, api, alice, tmp_path):
    """The running parent lends its slot to its child; another top-level request still waits."""
    define(api, SELFISH)
    trace = tmp_path / "trace"
    first = submit(api, "selfish", {"Depth": "0", "Trace": str(trace), "Tag": "first"})
    child_of(first)
    second = submit(api, "selfish", {"Depth": "0", "Trace": str(tmp_path / "other"), "Tag": "second"})
    assert wait_for_state(first, timeout=60).job_state == "COMPLETED"
    assert lines(trace) == ["child-1", "first-0"]  # the child ran while its parent held the slot
    assert wait_for_state(second, timeout=90).job_state == "COMPLETED"
    ended = JobRequest.objects.get(pk=first).last_execution.ended_at
    started = JobRequest.objects.get(pk=second).last_execution.started_at
    assert started >= ended  # the limit still held for a request that is not a child
