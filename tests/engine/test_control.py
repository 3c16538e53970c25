"""Scheduling and control: priority, fairness, concurrency, time, cron, pause/resume, restart,
trigger, job retry, fork/await and public plugins. Standalone and distributed."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.queen.cron import CronScheduler
from jobs.services import control
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state


def define(api, text: str) -> str:  # type: ignore[no-untyped-def]
    resp = upload(api, text)
    assert resp.status_code in (200, 201), resp.content
    return resp.json()["job_type"]


def submit(member, job_type: str, **kwargs):  # type: ignore[no-untyped-def]
    params = kwargs.pop("params", {})
    return request_submit(org_id=member.org_id, user=member.user, job_type=job_type, params=params, **kwargs)


def wait_until(check, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s")


def lines(path) -> list[str]:  # type: ignore[no-untyped-def]
    return path.read_text().split() if path.exists() else []


SLEEPER = """\
job_type: {name}
max_concurrency: {limit}
tasks:
- task_type: work
  method: SHELL
  script: ["echo {{{{.Tag}}}} >> {{{{.Trace}}}}", "sleep {{{{.Sleep}}}}"]
"""


def sleeper(api, name: str, limit: int = 1) -> str:  # type: ignore[no-untyped-def]
    return define(api, SLEEPER.format(name=name, limit=limit))


def test_priority_then_age(cluster, api, alice, tmp_path):
    job = sleeper(api, "prio")
    trace = tmp_path / "trace"
    blocker = submit(alice, job, params={"Tag": "blocker", "Trace": str(trace), "Sleep": "1"})
    wait_for_state(blocker.pk, ["EXECUTING"])
    old_low = submit(alice, job, params={"Tag": "low1", "Trace": str(trace), "Sleep": "0"}, job_priority=0)
    high = submit(alice, job, params={"Tag": "high", "Trace": str(trace), "Sleep": "0"}, job_priority=10)
    new_low = submit(alice, job, params={"Tag": "low2", "Trace": str(trace), "Sleep": "0"}, job_priority=0)
    for r in (blocker, old_low, high, new_low):
        assert wait_for_state(r.pk).job_state == "COMPLETED"
    assert lines(trace) == ["blocker", "high", "low1", "low2"]


def test_waiting_request_says_why_and_does_not_block_others(cluster, api, alice, tmp_path):
    limited = sleeper(api, "limited")
    other = sleeper(api, "other")
    trace = tmp_path / "trace"
    running = submit(alice, limited, params={"Tag": "a1", "Trace": str(trace), "Sleep": "2"})
    wait_for_state(running.pk, ["EXECUTING"])
    waiting = submit(alice, limited, params={"Tag": "a2", "Trace": str(trace), "Sleep": "0"}, job_priority=5)
    behind = submit(alice, other, params={"Tag": "b", "Trace": str(trace), "Sleep": "0"})
    assert wait_for_state(behind.pk).job_state == "COMPLETED"
    waiting.refresh_from_db()
    assert waiting.job_state == "PENDING"
    reason = api.get(f"/api/jobs/requests/{waiting.pk}/wait_time").json()["reason"]
    assert "1 of 1 allowed limited" in reason, reason
    assert wait_for_state(waiting.pk).job_state == "COMPLETED"


def test_concurrency_change_takes_effect_at_once(cluster, api, alice, tmp_path):
    job = sleeper(api, "conc")
    trace = tmp_path / "trace"
    first = submit(alice, job, params={"Tag": "a", "Trace": str(trace), "Sleep": "4"})
    wait_for_state(first.pk, ["EXECUTING"])
    second = submit(alice, job, params={"Tag": "b", "Trace": str(trace), "Sleep": "0"})
    time.sleep(0.5)
    assert JobRequest.objects.get(pk=second.pk).job_state == "PENDING"
    definition = api.get(f"/api/jobs/definitions/{job}").json()
    assert api.put(f"/api/jobs/definitions/{definition['id']}/concurrency", {"concurrency": 2},
                   format="json").status_code == 200  # fmt: skip
    assert wait_for_state(second.pk, timeout=8).job_state == "COMPLETED"
    assert JobRequest.objects.get(pk=first.pk).job_state == "EXECUTING"  # it ran beside the first


def test_max_concurrency_one_is_honoured(cluster, api, alice, tmp_path):
    job = sleeper(api, "one-at-a-time", limit=1)
    trace = tmp_path / "trace"
    requests = [
        submit(alice, job, params={"Tag": str(i), "Trace": str(trace), "Sleep": "0.2"}) for i in range(4)
    ]
    for r in requests:
        assert wait_for_state(r.pk, timeout=30).job_state == "COMPLETED"
    spans = sorted(
        JobExecution.objects.filter(job_request__in=requests).values_list("started_at", "ended_at")
    )
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), "two ran at once"


def test_scheduled_at_waits_and_trigger_runs_now(cluster, api, alice, tmp_path):
    job = sleeper(api, "later", limit=5)
    trace = tmp_path / "trace"
    soon = submit(alice, job, params={"Tag": "soon", "Trace": str(trace), "Sleep": "0"},
                  scheduled_at=timezone.now() + timedelta(seconds=2))  # fmt: skip
    far = submit(alice, job, params={"Tag": "far", "Trace": str(trace), "Sleep": "0"},
                 scheduled_at=timezone.now() + timedelta(days=30))  # fmt: skip
    time.sleep(1)
    assert JobRequest.objects.get(pk=soon.pk).job_state == "PENDING"
    assert wait_for_state(soon.pk, timeout=10).job_state == "COMPLETED"
    assert JobRequest.objects.get(pk=far.pk).job_state == "PENDING"
    assert "scheduled for" in api.get(f"/api/jobs/requests/{far.pk}/wait_time").json()["reason"]
    assert api.post(f"/api/jobs/requests/{far.pk}/trigger").status_code == 200
    assert wait_for_state(far.pk, timeout=10).job_state == "COMPLETED"
    assert api.post(f"/api/jobs/requests/{far.pk}/trigger").status_code == 400


CRON = """\
job_type: ticker
cron_trigger: "{expr}"
tasks:
- task_type: tick
  method: SHELL
  script: ["echo tick"]
"""


@pytest.mark.parametrize("expr", ["* * * * * * *", "*/1 * * * * *"])
def test_cron_creates_one_request_per_tick_and_stops_when_disabled(cluster, api, alice, expr):
    definition_id = upload(api, CRON.format(expr=expr)).json()["id"]
    wait_until(lambda: JobRequest.objects.filter(job_type="ticker").count() >= 3, 15, "three cron ticks")
    assert api.post(f"/api/jobs/definitions/{definition_id}/disable").status_code == 200
    time.sleep(1.2)  # a tick already being created may still land
    count = JobRequest.objects.filter(job_type="ticker").count()
    time.sleep(2.5)
    assert JobRequest.objects.filter(job_type="ticker").count() == count
    ticks = list(JobRequest.objects.filter(job_type="ticker").values_list("scheduled_at", flat=True))
    assert len(ticks) == len(set(ticks))
    assert all(t.microsecond == 0 for t in ticks)
    assert JobRequest.objects.filter(job_type="ticker", cron_triggered=True).count() == count


def test_cron_tick_is_created_once_by_two_schedulers(transactional_db, api, alice):
    upload(api, CRON.format(expr="* * * * * *"))
    now = timezone.now().replace(microsecond=0)
    created = CronScheduler().run_once(now) + CronScheduler().run_once(now)
    assert created == 1
    assert JobRequest.objects.filter(job_type="ticker").count() == 1


PIPE = """\
job_type: pipe
tasks:
- task_type: one
  method: SHELL
  script: ["echo one >> {{.Trace}}", "sleep 1"]
  on_completed: two
- task_type: two
  method: SHELL
  script: ["echo two >> {{.Trace}}"]
  on_completed: three
- task_type: three
  method: SHELL
  allow_start_if_completed: {{if .Again}}true{{else}}false{{end}}
  script: ["echo three >> {{.Trace}}", "test -f {{.Flag}}"]
"""


def test_pause_and_resume(cluster, api, alice, tmp_path):
    define(api, PIPE)
    trace, flag = tmp_path / "trace", tmp_path / "flag"
    flag.touch()
    request = submit(alice, "pipe", params={"Trace": str(trace), "Flag": str(flag)})
    wait_until(lambda: lines(trace) == ["one"], what="task one started")
    assert api.post(f"/api/jobs/requests/{request.pk}/pause").status_code == 200
    time.sleep(2)  # task one finishes on its ant; nothing new starts
    assert JobRequest.objects.get(pk=request.pk).job_state == "PAUSED"
    assert lines(trace) == ["one"]
    assert (
        TaskExecution.objects.get(job_execution__job_request=request, task_type="two").task_state == "READY"
    )
    assert api.post(f"/api/jobs/requests/{request.pk}/resume").status_code == 200
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    assert lines(trace) == ["one", "two", "three"]


def test_soft_restart_reruns_only_unfinished_tasks_and_hard_reruns_all(cluster, api, alice, tmp_path):
    define(api, PIPE)
    trace, flag = tmp_path / "trace", tmp_path / "flag"
    request = submit(alice, "pipe", params={"Trace": str(trace), "Flag": str(flag)})
    assert wait_for_state(request.pk).job_state == "FAILED"
    assert lines(trace) == ["one", "two", "three"]
    flag.touch()
    assert api.post(f"/api/jobs/requests/{request.pk}/restart").status_code == 200
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    assert lines(trace) == ["one", "two", "three", "three"]  # one and two were reused
    assert api.post(f"/api/jobs/requests/{request.pk}/restart?hard=true").status_code == 200
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    assert lines(trace)[4:] == ["one", "two", "three"]
    assert JobExecution.objects.filter(job_request=request).count() == 3


def test_allow_start_if_completed_reruns_a_completed_task(cluster, api, alice, tmp_path):
    define(api, PIPE)
    trace, flag = tmp_path / "trace", tmp_path / "flag"
    flag.touch()
    request = submit(alice, "pipe", params={"Trace": str(trace), "Flag": str(flag), "Again": "yes"})
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    assert api.post(f"/api/jobs/requests/{request.pk}/restart").status_code == 200
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    assert lines(trace) == ["one", "two", "three", "three"]


def test_control_refuses_what_does_not_apply(cluster, api, alice, tmp_path):
    define(api, PIPE)
    request = submit(alice, "pipe", params={"Trace": str(tmp_path / "t"), "Flag": str(tmp_path / "f")})
    assert wait_for_state(request.pk).job_state == "FAILED"
    for action in ("pause", "resume", "cancel", "trigger"):
        resp = api.post(f"/api/jobs/requests/{request.pk}/{action}")
        assert resp.status_code == 400 and "FAILED" in resp.json()["error"], action


RETRYING = """\
job_type: retrying
retry: 3
hard_reset_after_retries: 2
tasks:
- task_type: setup
  method: SHELL
  script: ["echo setup >> {{.Trace}}"]
  on_completed: flaky
- task_type: flaky
  method: SHELL
  script: ["echo flaky >> {{.Trace}}", "test $(grep -c flaky {{.Trace}}) -ge 4"]
"""


def test_job_retry_reuses_completed_tasks_with_periodic_hard_reset(cluster, api, alice, tmp_path):
    define(api, RETRYING)
    trace = tmp_path / "trace"
    request = submit(alice, "retrying", params={"Trace": str(trace)})
    done = wait_for_state(request.pk, timeout=40)
    assert done.job_state == "COMPLETED" and done.retried == 3
    # retry 1 soft (setup reused), retry 2 hard (setup again), retry 3 soft
    assert lines(trace) == ["setup", "flaky", "flaky", "setup", "flaky", "flaky"]


CHILD = """\
job_type: child
tasks:
- task_type: work
  method: SHELL
  script: ["echo child {{.Name}} >> {{.Trace}}", "exit {{.Code}}"]
"""

PARENT = """\
job_type: parent
tasks:
- task_type: fork-a
  method: FORK_JOB
  fork_job_type: child
  variables:
    Name: a
    Trace: "{{.Trace}}"
    Code: "0"
  on_completed: fork-b
- task_type: fork-b
  method: FORK_JOB
  fork_job_type: child
  variables:
    Name: b
    Trace: "{{.Trace}}"
    Code: "{{.CodeB}}"
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork-a, fork-b]
  on_completed: after
- task_type: after
  method: SHELL
  script: ["echo parent-done >> {{.Trace}}"]
"""


@pytest.mark.parametrize(("code_b", "state"), [("0", "COMPLETED"), ("3", "FAILED")])
def test_fork_and_await(cluster, api, alice, tmp_path, code_b, state):
    define(api, CHILD)
    define(api, PARENT)
    trace = tmp_path / "trace"
    parent = submit(alice, "parent", params={"Trace": str(trace), "CodeB": code_b})
    done = wait_for_state(parent.pk, timeout=40)
    assert done.job_state == state, done.error_message
    children = JobRequest.objects.filter(parent=parent)
    assert children.count() == 2 and {c.job_type for c in children} == {"child"}
    assert sorted(lines(trace)[:4]) == sorted(["child", "a", "child", "b"])
    assert ("parent-done" in lines(trace)) == (state == "COMPLETED")
    if state == "FAILED":
        assert TaskExecution.objects.get(job_execution__job_request=parent, task_type="wait").error_code == (
            "ERR_FORKED_JOB_FAILED"
        )


def test_cancelling_the_parent_cancels_its_children(cluster, api, alice, tmp_path):
    define(api, CHILD.replace("exit {{.Code}}", "sleep 30"))
    define(api, PARENT)
    parent = submit(alice, "parent", params={"Trace": str(tmp_path / "t"), "CodeB": "0"})
    wait_until(lambda: JobRequest.objects.filter(parent=parent).count() == 2, what="two children")
    control.request_cancel(request=JobRequest.objects.get(pk=parent.pk))
    for child in JobRequest.objects.filter(parent=parent):
        assert wait_for_state(child.pk).job_state == "CANCELLED"


PLUGIN_USER = """\
job_type: uses-plugin
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: io.formicary.echo-plugin
  fork_job_version: 1.0-dev
  variables: {Word: hello}
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork]
"""

PLUGIN = """\
job_type: io.formicary.echo-plugin
public_plugin: true
sem_version: 1.0-dev
tasks:
- task_type: echo
  method: SHELL
  script: ["echo {{.Word}}"]
"""


def test_public_plugin_forked_by_another_organization(cluster, api, bob_api, bob):
    define(api, PLUGIN)
    define(bob_api, PLUGIN_USER)
    parent = submit(bob, "uses-plugin")
    assert wait_for_state(parent.pk, timeout=30).job_state == "COMPLETED"
    child = JobRequest.objects.get(parent=parent)
    assert child.organization_id == bob.org_id and child.job_type == "io.formicary.echo-plugin"


PAUSING = """\
job_type: pausing
tasks:
- task_type: first
  method: SHELL
  pause_time: 1s
  script: ["echo first >> {{.Trace}}"]
  on_exit_code:
    0: PAUSE_JOB
  on_completed: second
- task_type: second
  method: SHELL
  script: ["echo second >> {{.Trace}}"]
"""


def test_pause_job_target_resumes_after_pause_time(cluster, api, alice, tmp_path):
    define(api, PAUSING)
    trace = tmp_path / "trace"
    request = submit(alice, "pausing", params={"Trace": str(trace)})
    wait_for_state(request.pk, ["PAUSED"])
    assert lines(trace) == ["first"]
    assert wait_for_state(request.pk, timeout=20).job_state == "COMPLETED"
    assert lines(trace) == ["first", "second"]
