"""WEBSOCKET ants end to end: a real server, a queen, and ants written with the ``websockets``
client in a few lines."""

import json

import pytest

from jobs.models import JobRequest, TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import EXAMPLES_DIR, upload
from tests.engine.harness import wait_for_state

WEB_JOB = (EXAMPLES_DIR / "web-job.yaml").read_text()


def submit(api, member, definition: str = WEB_JOB) -> JobRequest:  # type: ignore[no-untyped-def]
    resp = upload(api, definition)
    assert resp.status_code in (200, 201), resp.content
    return request_submit(org_id=member.org_id, user=member.user, job_type=resp.json()["job_type"], params={})


def task_of(request: JobRequest, task_type: str = "process") -> TaskExecution:
    return TaskExecution.objects.get(job_execution__job_request=request, task_type=task_type)


def next_message(ws, kind: str = "task", timeout: float = 20.0) -> dict:  # type: ignore[no-untyped-def]
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("type") == kind:
            return message


def test_websocket_ant_runs_the_web_job(web_cluster, api, alice):
    # The whole ant: connect, register, take a task, answer it.
    with web_cluster.ant(alice.token, "browser", ["web", "js"]) as ws:
        request = submit(api, alice)
        task = json.loads(ws.recv(timeout=20))
        ws.send(json.dumps({**task, "status": "COMPLETED", "exit_code": "0", "task_context": {"Answer": "42"},
                            "stdout": ["rendered the page"]}))  # fmt: skip
        ack = json.loads(ws.recv(timeout=10))

    assert task["type"] == "task" and task["action"] == "EXECUTE"
    assert (task["task_type"], task["method"], task["job_type"]) == ("process", "WEBSOCKET", "web-job")
    assert task["organization_id"] == str(alice.org_id) and task["job_request_id"] == request.pk
    assert ack == {"type": "ack", "task_execution_id": task["task_execution_id"], "attempt": task["attempt"]}
    done = wait_for_state(request.pk)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    row = task_of(request)
    assert row.task_state == "COMPLETED" and row.exit_code == "0"
    assert row.ant_id == f"ws-{alice.org_id}-browser"
    assert row.context.get("Answer") == "42"


def test_client_failure_fails_the_task(web_cluster, api, alice):
    with web_cluster.ant(alice.token, "browser", ["web", "js"]) as ws:
        request = submit(api, alice)
        task = next_message(ws)
        ws.send(json.dumps({"task_execution_id": task["task_execution_id"], "attempt": task["attempt"],
                            "status": "FAILED", "exit_code": "3", "error_message": "no canvas"}))  # fmt: skip
        assert next_message(ws, "ack")["task_execution_id"] == task["task_execution_id"]
    done = wait_for_state(request.pk)
    assert done.job_state == "FAILED"
    row = task_of(request)
    assert (row.task_state, row.exit_code) == ("FAILED", "3")


def test_another_organizations_ant_never_gets_the_task(web_cluster, api, alice, bob):
    with web_cluster.ant(bob.token, "browser", ["web", "js"]) as bob_ws:
        request = submit(api, alice)
        with pytest.raises(TimeoutError):
            bob_ws.recv(timeout=2.5)  # globex's ant, same id and tags: nothing comes
        assert JobRequest.objects.get(pk=request.pk).job_state in ("PENDING", "READY")
        with web_cluster.ant(alice.token, "browser", ["web", "js"]) as ws:
            task = next_message(ws)
            assert task["organization_id"] == str(alice.org_id)
            ws.send(json.dumps({**task, "status": "COMPLETED"}))
            next_message(ws, "ack")
        assert wait_for_state(request.pk).job_state == "COMPLETED"
        with pytest.raises(TimeoutError):
            bob_ws.recv(timeout=0.5)
    assert task_of(request).ant_id == f"ws-{alice.org_id}-browser"


def test_disconnect_mid_task_fails_it(web_cluster, api, alice):
    with web_cluster.ant(alice.token, "tab-1", ["web", "js"]) as ws:
        request = submit(api, alice)
        next_message(ws)
    # closed without answering: the task fails at once with a clear code, nothing is stuck
    done = wait_for_state(request.pk, timeout=15)
    assert done.job_state == "FAILED"
    row = task_of(request)
    assert row.task_state == "FAILED" and row.error_code == "ERR_ANT_DISCONNECTED", (row.error_code,
                                                                                     row.error_message)  # fmt: skip


RETRYING_WEB_JOB = """\
job_type: web-job-retry
tasks:
- task_type: process
  method: WEBSOCKET
  retry: 1
  tags:
    - web
    - js
"""


def test_disconnect_mid_task_reruns_it_on_another_ant(web_cluster, api, alice):
    ants = [web_cluster.ant(alice.token, f"tab-{i}", ["web", "js"]) for i in (1, 2)]
    try:
        request = submit(api, alice, RETRYING_WEB_JOB)
        first = None
        while first is None:  # whichever ant got the task walks away without answering
            for ws in ants:
                try:
                    first = (ws, json.loads(ws.recv(timeout=0.2)))
                    break
                except TimeoutError:
                    continue
        first[0].close()
        survivor = next(ws for ws in ants if ws is not first[0])
        task = next_message(survivor)  # the retry
        assert task["task_execution_id"] == first[1]["task_execution_id"]
        survivor.send(json.dumps({**task, "status": "COMPLETED"}))
        next_message(survivor, "ack")
    finally:
        for ws in ants:
            ws.close()
    done = wait_for_state(request.pk, timeout=20)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    assert task_of(request).ant_id == survivor_id(alice, ants.index(survivor))


def survivor_id(member, index: int) -> str:  # type: ignore[no-untyped-def]
    return f"ws-{member.org_id}-tab-{index + 1}"


def test_worker_stops_when_the_socket_closes(web_cluster, alice):
    from ants.web.consumers import _connected

    ws = web_cluster.ant(alice.token, "short-lived", ["web"])
    ant_id = f"ws-{alice.org_id}-short-lived"
    assert ant_id in _connected
    ws.close()
    import time

    deadline = time.monotonic() + 10
    while ant_id in _connected or ant_id in dict(web_cluster.harness.queen.resources.ants):
        assert time.monotonic() < deadline, "the worker of a closed socket is still registered"
        time.sleep(0.05)
    # the same id may connect again once the old one has left
    web_cluster.ant(alice.token, "short-lived", ["web"]).close()


def test_same_ant_id_twice_is_refused(web_cluster, alice):
    with web_cluster.ant(alice.token, "dup", ["web"]):
        from websockets.sync.client import connect

        with connect(f"{web_cluster.url}?token={alice.token}") as ws:
            ws.send(json.dumps({"ant_id": "dup", "tags": ["web"], "methods": ["WEBSOCKET"]}))
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "error" and "already connected" in reply["error"]


def test_no_token_is_refused_by_the_server(web_cluster):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as exc:
        connect(web_cluster.url, open_timeout=10)
    assert exc.value.response.status_code == 403
