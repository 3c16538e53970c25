"""Fan-out end to end through the REST API, in standalone and distributed mode: instances within
``max_parallel`` (overlap measured from the instance rows), ``fail_fast``, a restart that re-runs
only the failed instances, an empty array, sources from an earlier task's job context and from a
param, a bad source, job fan-out with aggregation and cascade cancel, and a queen killed with
SIGKILL in the middle of a fan-out."""

import json
import time
from pathlib import Path

from jobs.models import JobRequest, TaskExecution
from tests.conftest import upload
from tests.engine.harness import wait_for_state


def define(api, text: str) -> None:  # type: ignore[no-untyped-def]
    resp = upload(api, text)
    assert resp.status_code in (200, 201), resp.content


def submit(api, job_type: str, **params: str) -> JobRequest:  # type: ignore[no-untyped-def]
    resp = api.post("/api/jobs/requests", {"job_type": job_type, "params": params}, format="json")
    assert resp.status_code in (200, 201), resp.content
    return JobRequest.objects.get(pk=resp.json()["id"])


def instances(request: JobRequest, step: str) -> list[TaskExecution]:
    return list(
        TaskExecution.objects.filter(job_execution=request.last_execution, fan_out_of=step).order_by(
            "fan_out_index"
        )
    )


def step_row(request: JobRequest, step: str) -> TaskExecution:
    return TaskExecution.objects.get(job_execution=request.last_execution, task_type=step)


def max_overlap(rows: list[TaskExecution]) -> int:
    """The most instances running at one moment, from their rows' start and end times."""
    edges = sorted([(r.started_at, 1) for r in rows] + [(r.ended_at, -1) for r in rows])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


REGIONS = """\
job_type: fan-regions
tasks:
- task_type: setup
  method: SHELL
  script:
    - echo '::add-job-context Regions::["r0","r1","r2","r3","r4","r5"]'
  on_completed: deploy
- task_type: deploy
  method: SHELL
  fan_out:
    source: Regions
    item_var: region
    max_parallel: 2
  script:
    - echo "deploying {{.region}} $region"
    - sleep 0.3
    - echo "::add-task-context Where::at-{{.region}}"
  on_completed: report
- task_type: report
  method: SHELL
  script:
    - echo "::add-task-context Seen::{{.FanOutItemCount}}-{{.region_5_Where}}-{{.region_0_status}}"
"""


def test_task_fan_out_runs_each_item_within_max_parallel(cluster, api, alice):
    define(api, REGIONS)
    request = submit(api, "fan-regions")
    done = wait_for_state(request.pk, timeout=90)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    rows = instances(done, "deploy")
    assert [(r.task_type, r.fan_out_index, r.task_state) for r in rows] == [
        (f"deploy-fo-{i}", i, "COMPLETED") for i in range(6)
    ]
    assert max_overlap(rows) <= 2
    step = step_row(done, "deploy")
    assert step.task_state == "COMPLETED" and step.fan_out_of == "" and step.fan_out_index is None
    assert {step.context[f"region_{i}_Where"] for i in range(6)} == {f"at-r{i}" for i in range(6)}
    assert step.context["FanOutItemCount"] == 6 and step.context["FanOutMode"] == "task"
    assert step.context["FanOutSource"] == "Regions" and step.context["region_3_status"] == "COMPLETED"
    assert step_row(done, "report").context["Seen"] == "6-at-r5-COMPLETED"  # promoted to the job context


FAIL_FAST = """\
job_type: fan-fail-fast
tasks:
- task_type: shards
  method: SHELL
  fan_out:
    source: Shards
    item_var: shard
    fail_fast: true
  script:
    - if [ "{{.shard}}" = bad ]; then sleep 1; exit 3; fi
    - sleep 60
  on_failed: cleanup
- task_type: cleanup
  method: SHELL
  script: ["echo cleaned"]
"""


def test_fail_fast_cancels_running_siblings_and_routes_on_failed(cluster, api, alice):
    define(api, FAIL_FAST)
    request = submit(api, "fan-fail-fast", Shards=json.dumps(["s0", "bad", "s2"]))
    done = wait_for_state(request.pk, timeout=45)  # the siblings would sleep 60 s uncancelled
    rows = instances(done, "shards")
    assert [r.task_state for r in rows] == ["CANCELLED", "FAILED", "CANCELLED"]
    step = step_row(done, "shards")
    assert step.task_state == "FAILED" and "item 1" in step.error_message, step.error_message
    assert step.context["shard_1_exit_code"] == "3"
    assert step_row(done, "cleanup").task_state == "COMPLETED"  # on_failed routed from the step's end


RESTART = """\
job_type: fan-restart
tasks:
- task_type: each
  method: SHELL
  fan_out:
    source: Items
    item_var: item
  script:
    - echo "{{.item}}" >> {{.Trace}}
    - test -e "{{.Flags}}/{{.item}}"
"""


def test_restart_reruns_only_failed_instances(cluster, api, alice, tmp_path):
    define(api, RESTART)
    flags, trace = tmp_path / "flags", tmp_path / "trace"
    flags.mkdir()
    (flags / "a").touch()
    (flags / "c").touch()
    request = submit(api, "fan-restart", Items='["a","b","c"]', Trace=str(trace), Flags=str(flags))
    failed = wait_for_state(request.pk, timeout=60)
    assert failed.job_state == "FAILED"
    assert sorted(lines(trace)) == ["a", "b", "c"]
    (flags / "b").touch()
    assert api.post(f"/api/jobs/requests/{request.pk}/restart").status_code == 200
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert sorted(lines(trace)) == ["a", "b", "b", "c"]  # only the failed instance ran again
    assert [r.task_state for r in instances(done, "each")] == ["COMPLETED"] * 3
    assert step_row(done, "each").context["item_1_status"] == "COMPLETED"


EMPTY_AND_BAD = """\
job_type: fan-edge
tasks:
- task_type: each
  method: SHELL
  fan_out:
    source: "{{if .Bad}}Missing{{else}}Items{{end}}"
    item_var: item
  script: ["echo {{.item}}"]
  on_completed: after
- task_type: after
  method: SHELL
  script: ["echo after"]
"""

EMPTY = """\
job_type: fan-empty
tasks:
- task_type: each
  method: SHELL
  fan_out:
    source: Items
    item_var: item
  script: ["echo {{.item}}"]
  on_completed: after
- task_type: after
  method: SHELL
  script: ["echo after"]
"""


def test_empty_array_completes_at_once_and_a_bad_source_fails_naming_it(cluster, api, alice):
    define(api, EMPTY)
    done = wait_for_state(submit(api, "fan-empty", Items="[]").pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert instances(done, "each") == []
    assert step_row(done, "each").context["FanOutItemCount"] == 0
    assert step_row(done, "after").task_state == "COMPLETED"
    for params, needle in (
        ({}, "'Items' is not in the job context"),
        ({"Items": "{not json"}, "not a JSON array"),
    ):
        bad = wait_for_state(submit(api, "fan-empty", **params).pk, timeout=60)
        assert bad.job_state == "FAILED"
        assert bad.error_code == "ERR_FAN_OUT_SOURCE" and needle in bad.error_message, bad.error_message
        assert "Items" in bad.error_message


def test_bad_fan_out_is_refused_at_upload_naming_task_and_field(db, api):
    resp = upload(api, EMPTY.replace("item_var: item", "item_var: 2bad"))
    assert resp.status_code == 400
    assert "each" in resp.content.decode() and "fan_out.item_var" in resp.content.decode()
    resp = upload(api, EMPTY.replace("item_var: item", "item_var: item\n    max_parallel: -1"))
    assert resp.status_code == 400 and "fan_out.max_parallel" in resp.content.decode()


CHILD = """\
job_type: fan-child
tasks:
- task_type: work
  method: SHELL
  script:
    - sleep {{.Nap}}
    - echo "::add-job-context Rows::rows-{{.dataset}}"
"""

PARENT = """\
job_type: fan-parent
tasks:
- task_type: datasets
  method: FORK_JOB
  variables:
    Nap: "{{.Nap}}"
  fan_out:
    source: Datasets
    item_var: dataset
    fork_job_type: fan-child
    max_parallel: 2
  on_completed: summary
- task_type: summary
  method: SHELL
  script: ["echo {{.FanOutMode}} {{.dataset_2_Rows}}"]
"""


def test_job_fan_out_aggregates_child_jobs_within_max_parallel(cluster, api, alice):
    define(api, CHILD)
    define(api, PARENT)
    request = submit(api, "fan-parent", Datasets='["d0","d1","d2"]', Nap="0.2")
    done = wait_for_state(request.pk, timeout=90)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    children = list(JobRequest.objects.filter(parent=request).order_by("pk"))
    assert [c.job_state for c in children] == ["COMPLETED"] * 3
    rows = instances(done, "datasets")
    assert [r.task_state for r in rows] == ["COMPLETED"] * 3 and max_overlap(rows) <= 2
    step = step_row(done, "datasets")
    assert step.context["FanOutMode"] == "job" and step.context["FanOutItemCount"] == 3
    assert [step.context[f"dataset_{i}_Rows"] for i in range(3)] == ["rows-d0", "rows-d1", "rows-d2"]
    assert step.context["dataset_0_status"] == "COMPLETED"


def test_cancelling_a_job_fan_out_cancels_its_children(cluster, api, alice):
    define(api, CHILD)
    define(api, PARENT)
    request = submit(api, "fan-parent", Datasets='["d0","d1","d2"]', Nap="60")
    deadline = time.monotonic() + 60
    while JobRequest.objects.filter(parent=request).count() < 2:
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.2)
    assert api.post(f"/api/jobs/requests/{request.pk}/cancel").status_code == 200
    for child in JobRequest.objects.filter(parent=request):
        assert wait_for_state(child.pk, timeout=30).job_state == "CANCELLED"
    time.sleep(1)  # the queen starts no further child once the parent is cancelled
    assert JobRequest.objects.filter(parent=request).count() == 2


KILL = """\
job_type: fan-kill
tasks:
- task_type: each
  method: SHELL
  fan_out:
    source: Items
    item_var: item
    max_parallel: 2
  script:
    - echo "start-{{.item}}" >> {{.Trace}}
    - sleep 0.4
    - echo "end-{{.item}}" >> {{.Trace}}
"""


def test_queen_killed_during_a_fan_out_loses_and_repeats_nothing(processes, api, alice, tmp_path):
    processes.start_queen()
    processes.start_ant("ant-a", ["a"], concurrency=2)
    processes.wait_ready()
    define(api, KILL)
    trace = tmp_path / "trace"
    items = [f"i{n}" for n in range(10)]
    request = submit(api, "fan-kill", Items=json.dumps(items), Trace=str(trace))
    deadline = time.monotonic() + 60
    while len([x for x in lines(trace) if x.startswith("end-")]) < 3:
        assert time.monotonic() < deadline, processes.logs()
        time.sleep(0.05)
    processes.kill("queen")
    processes.start_queen()
    done = wait_for_state(request.pk, timeout=120)
    assert done.job_state == "COMPLETED", processes.logs()
    seen = lines(trace)
    assert sorted(seen) == sorted([f"start-{i}" for i in items] + [f"end-{i}" for i in items]), seen
    rows = instances(done, "each")
    # a task the new queen could not place (its answer lost with the old one) may be sent again
    # under a new attempt; the trace above shows it still ran once
    assert [r.task_state for r in rows] == ["COMPLETED"] * 10 and max_overlap(rows) <= 2


RETRY = """\
job_type: fan-retry
tasks:
- task_type: each
  method: SHELL
  retry: 1
  fan_out:
    source: Items
    item_var: item
  script:
    - echo "{{.item}}" >> {{.Trace}}
    - if [ "{{.item}}" = flaky ] && [ ! -e "{{.Trace}}.once" ]; then touch "{{.Trace}}.once"; exit 1; fi
"""


def test_an_instance_is_retried_as_its_step_says(cluster, api, alice, tmp_path):
    define(api, RETRY)
    trace = tmp_path / "trace"
    request = submit(api, "fan-retry", Items='["steady","flaky"]', Trace=str(trace))
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert sorted(lines(trace)) == ["flaky", "flaky", "steady"]
    rows = instances(done, "each")
    assert [(r.task_state, r.retried) for r in rows] == [("COMPLETED", 0), ("COMPLETED", 1)]
    assert step_row(done, "each").retried == 0
