"""MESSAGING end to end: a queen and an ant (threads, in-process transport) send a task to the
example worker (examples/messaging_worker.py, its own process) over a real Redis."""

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ants.config import AntConfig
from ants.messaging import InProcessTransport
from ants.worker import AntWorker
from jobs.domain.logs import task_log_text
from jobs.models import JobRequest, TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import Harness, wait_for_state

ROOT = Path(__file__).resolve().parents[2]
JOB = """\
job_type: messaging-job-{tag}
tasks:
- task_type: greet
  method: MESSAGING
  messaging_request_queue: {tag}-request
  messaging_reply_queue: {tag}-response
  timeout: 30s
  variables:
    Name: "{{{{.Name}}}}"
    Fail: "{{{{.Fail}}}}"
  on_completed: after
- task_type: after
  method: SHELL
  script: ["echo greeting was {{{{.Greeting}}}}"]
"""


@pytest.fixture
def harness(tmp_path: Path, transactional_db, use_transport) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    h = Harness(use_transport(InProcessTransport()), tmp_path).start()
    yield h
    h.stop()


def add_ant(harness: Harness, ant_id: str, redis_url: str | None) -> None:
    config = AntConfig(ant_id=ant_id, methods=["MESSAGING", "SHELL"], heartbeat_secs=0.5, redis_url=redis_url,
                       work_root=harness.work_root / ant_id)  # fmt: skip
    ant = AntWorker(config, harness.transport, block_ms=100)
    harness.ants[ant_id] = ant
    harness._spawn(ant.run_forever, ant_id)
    ant.heartbeat()


@pytest.fixture
def tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker(messaging_redis_url: str, tag: str, tmp_path: Path) -> Iterator[subprocess.Popen]:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "messaging_worker.py"), "--redis-url", messaging_redis_url,
         "--queue", f"{tag}-request"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield proc
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def submit(api, member, tag: str, **params) -> JobRequest:  # type: ignore[no-untyped-def]
    resp = upload(api, JOB.format(tag=tag))
    assert resp.status_code in (200, 201), resp.content
    return request_submit(
        org_id=member.org_id, user=member.user, job_type=resp.json()["job_type"], params=params
    )


def tasks_of(request: JobRequest) -> dict[str, TaskExecution]:
    return {t.task_type: t for t in TaskExecution.objects.filter(job_execution__job_request=request)}


def test_example_worker_completes_the_task(harness, worker, messaging_redis_url, api, alice, tag):
    add_ant(harness, "messaging-ant", messaging_redis_url)
    request = submit(api, alice, tag, Name="ants", Fail="false")
    done = wait_for_state(request.pk, timeout=30)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    tasks = tasks_of(request)
    assert tasks["greet"].ant_id == "messaging-ant" and tasks["greet"].exit_code == "0"
    assert tasks["greet"].context.get("Greeting") == "hello ants"
    deadline = time.monotonic() + 10
    while "greeting was hello ants" not in task_log_text(tasks["after"].pk) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "greeting was hello ants" in task_log_text(tasks["after"].pk)
    assert f"hello ants from task greet (request {request.pk})" in task_log_text(tasks["greet"].pk)


def test_worker_failure_fails_the_task(harness, worker, messaging_redis_url, api, alice, tag):
    add_ant(harness, "messaging-ant", messaging_redis_url)
    request = submit(api, alice, tag, Name="ants", Fail="true")
    done = wait_for_state(request.pk, timeout=30)
    assert done.job_state == "FAILED"
    greet = tasks_of(request)["greet"]
    assert (greet.task_state, greet.exit_code) == ("FAILED", "1")
    assert "asked to fail" in greet.error_message


def test_an_ant_without_redis_says_messaging_is_unavailable(harness, api, alice, tag, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("FORMICARY_MESSAGING_REDIS_URL", raising=False)
    add_ant(harness, "standalone-ant", None)
    request = submit(api, alice, tag, Name="ants", Fail="false")
    done = wait_for_state(request.pk, timeout=30)
    assert done.job_state == "FAILED"
    greet = tasks_of(request)["greet"]
    assert greet.error_code == "ERR_MESSAGING_UNAVAILABLE" and "needs Redis" in greet.error_message
