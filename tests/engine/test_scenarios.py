"""The engine end to end, in standalone mode (threads, in-process messaging) and distributed
mode (queen and two ants as processes over Redis): pipelines, routing, retries, timeouts,
cancel, tags and capacity."""

import os
import time
from pathlib import Path

import pytest

from jobs.domain.logs import task_log_text
from jobs.models import JobRequest, TaskExecution
from jobs.services.control import request_cancel
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state


def submit(api, member, definition: str, **params):  # type: ignore[no-untyped-def]
    resp = upload(api, definition)
    assert resp.status_code in (200, 201), resp.content
    job_type = resp.json()["job_type"]
    return request_submit(org_id=member.org_id, user=member.user, job_type=job_type, params=params)


def tasks_of(request: JobRequest) -> dict[str, TaskExecution]:
    return {t.task_type: t for t in TaskExecution.objects.filter(job_execution__job_request=request)}


PIPELINE = """\
job_type: pipeline
tasks:
- task_type: produce
  method: SHELL
  script:
    - echo "produced {{.Word}}"
    - echo "Color=blue" >> "$FORMICARY_CONTEXT_FILE"
  on_completed: consume
- task_type: consume
  method: SHELL
  script:
    - echo "consumer saw {{.Color}} and $Word"
  on_completed: report
- task_type: report
  method: SHELL
  script: ["echo job {{.JobID}} type {{.JobType}}"]
"""


def test_multi_task_pipeline_passes_context(cluster, api, alice):
    request = submit(api, alice, PIPELINE, Word="ant")
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    tasks = tasks_of(request)
    assert [t.task_state for t in sorted(tasks.values(), key=lambda t: t.task_order)] == ["COMPLETED"] * 3
    assert tasks["produce"].context.get("Color") == "blue"
    # the log writer stores lines a little after the task ends: wait for each (bounded)
    assert logged(tasks["consume"].pk, "consumer saw blue and ant")
    assert logged(tasks["report"].pk, f"job {request.pk} type pipeline")


def logged(task_id: int, text: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while text not in task_log_text(task_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


ROUTING = """\
job_type: routing
tasks:
- task_type: check
  method: SHELL
  script: ["exit {{.Code}}"]
  on_exit_code:
    1: monday
    2: tuesday
    3: COMPLETED
  on_completed: done
- task_type: monday
  method: SHELL
  script: ["echo monday"]
  on_completed: done
- task_type: tuesday
  method: SHELL
  script: ["echo tuesday"]
  on_completed: done
- task_type: done
  method: SHELL
  always_run: true
  script: ["echo done"]
"""


@pytest.mark.parametrize(
    ("code", "ran", "state"),
    [("0", {"check", "done"}, "COMPLETED"), ("1", {"check", "monday", "done"}, "COMPLETED"),
     ("2", {"check", "tuesday", "done"}, "COMPLETED"), ("3", {"check", "done"}, "COMPLETED"),
     ("7", {"check", "done"}, "FAILED")],
)  # fmt: skip
def test_exit_code_routing_and_always_run(cluster, api, alice, code, ran, state):
    request = submit(api, alice, ROUTING, Code=code)
    done = wait_for_state(request.pk)
    assert done.job_state == state
    tasks = tasks_of(request)
    assert set(tasks) == ran
    assert tasks["check"].exit_code == code
    assert tasks["done"].task_state == "COMPLETED"  # always_run: it runs even when the job failed


OPTIONAL = """\
job_type: optional
tasks:
- task_type: flaky
  method: SHELL
  allow_failure: true
  script: ["exit 3"]
  on_completed: after
- task_type: after
  method: SHELL
  script: ["echo after"]
"""


def test_allow_failure_task_continues_to_on_completed(cluster, api, alice):
    request = submit(api, alice, OPTIONAL)
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED"
    tasks = tasks_of(request)
    assert tasks["flaky"].task_state == "FAILED" and tasks["after"].task_state == "COMPLETED"


RETRY = """\
job_type: retry
tasks:
- task_type: wobbly
  method: SHELL
  retry: 2
  delay_between_retries: 200ms
  script:
    - n=$(cat {{.Counter}} 2>/dev/null || echo 0); echo $((n+1)) > {{.Counter}}; [ "$n" -ge 2 ]
"""


def test_task_retry_until_success(cluster, api, alice, tmp_path):
    request = submit(api, alice, RETRY, Counter=str(tmp_path / "count"))
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", done.error_message
    assert tasks_of(request)["wobbly"].retried == 2
    assert (tmp_path / "count").read_text().strip() == "3"


def test_task_retry_exhausted_fails_job(cluster, api, alice, tmp_path):
    request = submit(api, alice, RETRY.replace("retry: 2", "retry: 1"), Counter=str(tmp_path / "count"))
    done = wait_for_state(request.pk)
    assert done.job_state == "FAILED"
    assert (tmp_path / "count").read_text().strip() == "2"


SLOW = """\
job_type: slow
tasks:
- task_type: sleeper
  method: SHELL
  timeout: 1s
  script:
    - sh -c 'echo $$ > {{.PidFile}}; exec sleep 60'
"""


def _pid_gone(pid_file: Path, timeout: float = 10.0) -> bool:
    """The process whose pid the task wrote is gone: no such process, or a zombie (its shell
    died first, so it waits for whichever process adopted it to reap it). A file still empty
    means the task was stopped before its shell wrote the pid: nothing was left running."""
    deadline = time.monotonic() + timeout
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    settled = time.monotonic() + 1.0  # a shell that still runs writes its pid by then
    while not (text := pid_file.read_text().strip()) and time.monotonic() < settled:
        time.sleep(0.05)
    if not text:
        return True
    pid = int(text)
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if _zombie(pid):
                return True
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # the state follows the command's name


def test_task_timeout_kills_the_process(cluster, api, alice, tmp_path):
    pid_file = tmp_path / "pid"
    request = submit(api, alice, SLOW, PidFile=str(pid_file))
    done = wait_for_state(request.pk, timeout=30)
    assert done.job_state == "FAILED"
    assert tasks_of(request)["sleeper"].error_code == "ERR_TASK_TIMEOUT"
    assert _pid_gone(pid_file)


def test_cancel_running_job_kills_the_process(cluster, api, alice, tmp_path):
    pid_file = tmp_path / "pid"
    request = submit(api, alice, SLOW.replace("timeout: 1s", "timeout: 5m"), PidFile=str(pid_file))
    wait_for_state(request.pk, ["EXECUTING"])
    deadline = time.monotonic() + 15
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    request_cancel(request=JobRequest.objects.get(pk=request.pk))
    assert wait_for_state(request.pk).job_state == "CANCELLED"
    assert tasks_of(request)["sleeper"].task_state == "CANCELLED"
    assert _pid_gone(pid_file)


ORPHANING = """\
job_type: orphaning
tasks:
- task_type: leave
  method: SHELL
  tags: [a]
  script: ["(sleep 2 </dev/null >/dev/null 2>&1 & echo $! > {{.PidFile}})"]
"""


def test_the_ant_adopts_and_reaps_what_a_task_left_running(cluster, api, alice, tmp_path):
    """A background process the task's shell left is given to the ant process (a child
    subreaper), not to PID 1, and waited for once it exits (killed with the task's process
    group at the task's end): no zombie stays behind."""
    if cluster.processes is None:
        pytest.skip("the ant's own process: distributed mode")
    pid_file = tmp_path / "pid"
    request = submit(api, alice, ORPHANING, PidFile=str(pid_file))
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    pid = int(pid_file.read_text())
    stat = Path(f"/proc/{pid}/stat").read_text()
    assert int(stat.rsplit(")", 1)[1].split()[1]) == cluster.processes.procs["ant-a"].pid  # its parent now
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the orphan stayed a zombie"


def test_cancel_pending_job(cluster, api, alice):
    future = submit(api, alice, PIPELINE, Word="later")
    JobRequest.objects.filter(pk=future.pk).update(scheduled_at="2099-01-01T00:00:00Z")
    request_cancel(request=JobRequest.objects.get(pk=future.pk))
    assert JobRequest.objects.get(pk=future.pk).job_state == "CANCELLED"


TAGGED = """\
job_type: tagged
tasks:
- task_type: on-a
  method: SHELL
  tags: [a]
  script: ["echo a"]
  on_completed: on-b
- task_type: on-b
  method: SHELL
  tags: [b]
  script: ["echo b"]
"""


def test_tag_routing(cluster, api, alice):
    requests = [submit(api, alice, TAGGED) for _ in range(4)]
    for request in requests:
        assert wait_for_state(request.pk).job_state == "COMPLETED"
    for request in requests:
        tasks = tasks_of(request)
        assert tasks["on-a"].ant_id == "ant-a" and tasks["on-b"].ant_id == "ant-b"


NOBODY = """\
job_type: nobody
tasks:
- task_type: lonely
  method: SHELL
  tags: [gpu]
  script: ["echo never"]
"""


def test_request_no_ant_can_run_waits_with_a_reason(cluster, api, alice):
    request = submit(api, alice, NOBODY)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        request.refresh_from_db()
        if "no live ant" in request.state_message:
            break
        time.sleep(0.1)
    assert request.job_state == "PENDING"
    assert "gpu" in request.state_message
    wait = api.get(f"/api/jobs/requests/{request.pk}/wait_time").json()
    assert "no live ant" in wait["reason"]


BUSY = """\
job_type: busy
max_concurrency: 20
tasks:
- task_type: work
  method: SHELL
  tags: [shared]
  script:
  - date +%s.%N > {{.Spans}}/{{.JobID}}.start
  - sleep 0.3
  - date +%s.%N > {{.Spans}}/{{.JobID}}.end
"""


def peak(spans: list[tuple[float, float]]) -> int:
    """Highest number of spans open at once."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    load = top = 0
    for _, delta in events:
        load += delta
        top = max(top, load)
    return top


def test_capacity_is_never_exceeded(cluster, api, alice, tmp_path):
    # the queen may send an ant a task ahead (it waits in the ant's stream), but the ant never
    # runs more than its capacity: the tasks record when they really ran
    requests = [submit(api, alice, BUSY, Spans=str(tmp_path)) for _ in range(10)]
    for request in requests:
        assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED"
    spans: dict[str, list[tuple[float, float]]] = {}
    for request in requests:
        task = tasks_of(request)["work"]
        run = (
            float((tmp_path / f"{request.pk}.start").read_text()),
            float((tmp_path / f"{request.pk}.end").read_text()),
        )
        spans.setdefault(task.ant_id, []).append(run)
    assert set(spans) == {"ant-a", "ant-b"}
    for ant_id, runs in spans.items():
        assert peak(runs) <= 2, ant_id


SKIPPY = """\
job_type: skippy
skip_if: {{if eq .Branch "main"}}false{{else}}true{{end}}
tasks:
- task_type: maybe
  method: SHELL
  except: "{{if eq .Mode "fast"}}true{{end}}"
  script: ["echo maybe"]
  on_completed: last
- task_type: last
  method: SHELL
  script: ["echo last"]
"""


def test_skip_if_filters_and_except_skips(cluster, api, alice):
    filtered = submit(api, alice, SKIPPY, Branch="dev", Mode="slow")
    assert wait_for_state(filtered.pk).job_state == "FILTERED"
    skipped = submit(api, alice, SKIPPY, Branch="main", Mode="fast")
    assert wait_for_state(skipped.pk).job_state == "COMPLETED"
    tasks = tasks_of(skipped)
    assert tasks["maybe"].task_state == "SKIPPED" and tasks["last"].task_state == "COMPLETED"


JOB_TIMEOUT = """\
job_type: job-timeout
timeout: 1s
tasks:
- task_type: long
  method: SHELL
  script: ["sleep 30"]
"""


def test_job_timeout(cluster, api, alice):
    request = submit(api, alice, JOB_TIMEOUT)
    done = wait_for_state(request.pk, timeout=30)
    assert done.job_state == "FAILED" and done.error_code == "ERR_JOB_TIMEOUT"


HTTP = """\
job_type: http-calls
tasks:
- task_type: get
  method: HTTP_GET
  url: {{.Base}}/item
  on_completed: post
- task_type: post
  method: HTTP_POST_JSON
  url: {{.Base}}/items
  variables:
    name: widget
  on_completed: missing
- task_type: missing
  method: HTTP_GET
  allow_failure: true
  script:
    - {{.Base}}/nothing-here
"""


def test_http_tasks_status_is_the_exit_code(cluster, api, alice):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, body))
            status = 404 if "nothing" in self.path else (201 if self.command == "POST" else 200)
            payload = json.dumps({"ok": self.path}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _reply

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = submit(api, alice, HTTP, Base=f"http://127.0.0.1:{server.server_port}")
        done = wait_for_state(request.pk)
        assert done.job_state == "COMPLETED", done.error_message
        tasks = tasks_of(request)
        assert (tasks["get"].exit_code, tasks["post"].exit_code, tasks["missing"].exit_code) == (
            "200",
            "201",
            "404",
        )
        assert tasks["missing"].task_state == "FAILED"
        post = next(s for s in seen if s[0] == "POST")
        assert json.loads(post[2]) == {"name": "widget"}
    finally:
        server.shutdown()


SECRETIVE = """\
job_type: secretive
tasks:
- task_type: leak
  method: SHELL
  script:
    - echo "the token is {{.ApiToken}} and $ApiToken"
    - echo "Leaked={{.ApiToken}}" >> "$FORMICARY_CONTEXT_FILE"
"""


def test_secrets_never_reach_logs_or_api(cluster, api, alice):
    assert upload(api, SECRETIVE).status_code == 201
    params = [{"name": "ApiToken", "value": "tok-9f8e7d6c", "secret": True}]
    resp = api.post("/api/jobs/requests", {"job_type": "secretive", "params": params}, format="json")
    assert resp.status_code == 201
    request_id = resp.json()["id"]
    assert wait_for_state(request_id).job_state == "COMPLETED"
    detail = api.get(f"/api/jobs/requests/{request_id}").content.decode()
    assert "tok-9f8e7d6c" not in detail and "****" in detail
    time.sleep(0.5)
    logs = api.get(f"/api/jobs/requests/{request_id}/logs").content.decode()
    assert "the token is ****" in logs and "tok-9f8e7d6c" not in logs


WORKDIRS = """\
job_type: workdirs
tasks:
- task_type: make
  method: SHELL
  working_dir: /build
  script: ["pwd > where.txt", "echo made > out.txt"]
  artifacts:
    paths: [out.txt]
  on_completed: use
- task_type: use
  method: SHELL
  working_dir: /other
  dependencies: [make]
  script: ["cat out.txt", "test \\"$(cat out.txt)\\" = made"]
"""


def test_shell_working_dir_holds_artifacts_and_dependencies(cluster, api, alice):
    request = submit(api, alice, WORKDIRS)
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", done.error_message
    from artifacts.models import Artifact

    assert Artifact.objects.filter(job_request=request, name="out.txt").exists()
