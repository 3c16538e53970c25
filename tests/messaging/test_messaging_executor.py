"""The MESSAGING executor against a real Redis: correlation, timeout, cancel, bad replies."""

import json
import threading
import time
import uuid

import pytest

from ants.executors.base import ExecutionContext
from ants.executors.messaging import (
    ERR_MESSAGING_REDIS,
    ERR_MESSAGING_REPLY,
    ERR_MESSAGING_UNAVAILABLE,
    FORMAT,
    MessagingExecutor,
    reply_key,
)
from ants.protocol import TaskRequest


@pytest.fixture
def queues() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"test-{tag}-requests", f"test-{tag}-replies"


def request(queues: tuple[str, str], task_id: int = 7, attempt: int = 1, **kw) -> TaskRequest:  # type: ignore[no-untyped-def]
    spec = {"messaging_request_queue": queues[0], "messaging_reply_queue": queues[1],
            "variables": {"Name": "ants"}}  # fmt: skip
    return TaskRequest(task_execution_id=task_id, job_request_id=3, task_type="greet", method="MESSAGING",
                       attempt=attempt, organization_id="1", spec=spec, variables={"JobID": "3"}, **kw)  # fmt: skip


def ctx(tmp_path, **kw) -> ExecutionContext:  # type: ignore[no-untyped-def]
    lines: list[tuple[str, str]] = []
    c = ExecutionContext(workdir=tmp_path, log=lambda stream, line: lines.append((stream, line)), **kw)
    c.lines = lines  # type: ignore[attr-defined]
    return c


def test_request_format_and_reply(tmp_path, messaging_redis_url, rclient, queues):
    executor = MessagingExecutor(redis_url=messaging_redis_url)
    results = {}
    c = ctx(tmp_path, deadline=time.monotonic() + 10)
    thread = threading.Thread(target=lambda: results.setdefault("r", executor.execute(request(queues), c)))
    thread.start()
    _, raw = rclient.blpop([queues[0]], timeout=5)
    msg = json.loads(raw)
    assert msg["format"] == FORMAT and msg["action"] == "EXECUTE"
    assert (msg["task_execution_id"], msg["attempt"], msg["job_request_id"], msg["task_type"]) == (
        7,
        1,
        3,
        "greet",
    )
    assert msg["organization_id"] == "1" and msg["variables"] == {"JobID": "3"}
    assert msg["spec"]["variables"] == {"Name": "ants"} and msg["deadline"] > time.time()
    assert msg["reply_to"] == reply_key(queues[1], 7, 1) == f"{queues[1]}:7:1"
    rclient.rpush(msg["reply_to"], json.dumps({"task_execution_id": 7, "attempt": 1, "status": "COMPLETED",
                                               "exit_code": 0, "task_context": {"Greeting": "hi"},
                                               "stdout": ["line one"]}))  # fmt: skip
    thread.join(10)
    result = results["r"]
    assert (result.status, result.exit_code, result.task_context) == ("COMPLETED", "0", {"Greeting": "hi"})
    assert ("stdout", "line one") in c.lines and result.stdout == ["line one"]


def test_replies_are_correlated_per_attempt(tmp_path, messaging_redis_url, rclient, queues):
    """Two tasks waiting on one reply queue: answered in reverse order, each gets its own."""
    executor = MessagingExecutor(redis_url=messaging_redis_url)
    results: dict[int, object] = {}

    def run(task_id: int) -> None:
        results[task_id] = executor.execute(
            request(queues, task_id), ctx(tmp_path, deadline=time.monotonic() + 10)
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    msgs = [json.loads(rclient.blpop([queues[0]], timeout=5)[1]) for _ in range(2)]
    for msg in sorted(msgs, key=lambda m: -m["task_execution_id"]):
        rclient.rpush(msg["reply_to"], json.dumps({"task_execution_id": msg["task_execution_id"], "attempt": 1,
                                                   "status": "COMPLETED", "exit_code": str(msg["task_execution_id"])}))  # fmt: skip
    for t in threads:
        t.join(10)
    assert {k: v.exit_code for k, v in results.items()} == {1: "1", 2: "2"}  # type: ignore[attr-defined]


def test_timeout_and_cancel(tmp_path, messaging_redis_url, rclient, queues):
    executor = MessagingExecutor(redis_url=messaging_redis_url)
    result = executor.execute(
        request(queues, timeout_secs=0.5), ctx(tmp_path, deadline=time.monotonic() + 0.5)
    )
    assert (result.status, result.error_code) == ("FAILED", "ERR_TASK_TIMEOUT")  # no reply ever comes
    assert rclient.get(f"{queues[1]}:7:1:cancel") == b"timeout"

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = executor.execute(request(queues, 8), ctx(tmp_path, cancel_event=cancel))
    assert result.status == "CANCELLED"
    assert rclient.get(f"{queues[1]}:8:1:cancel") == b"cancelled"


def test_a_rerun_of_the_attempt_takes_a_reply_already_there(tmp_path, messaging_redis_url, rclient, queues):
    rclient.rpush(reply_key(queues[1], 9, 2), json.dumps({"status": "COMPLETED", "task_context": {"A": "1"}}))
    result = MessagingExecutor(redis_url=messaging_redis_url).execute(
        request(queues, 9, 2), ctx(tmp_path, deadline=time.monotonic() + 5)
    )
    assert result.status == "COMPLETED" and result.task_context == {"A": "1"}
    assert rclient.llen(queues[0]) == 0  # not sent again


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"status": "DONE"}', "status"),
        ('{"status": "COMPLETED", "task_execution_id": 8}', "task_execution_id is 8"),
        ('{"status": "COMPLETED", "task_context": "x"}', "task_context"),
    ],
)
def test_malformed_reply_fails_the_task_naming_the_problem(tmp_path, messaging_redis_url, rclient, queues,
                                                           reply, problem):  # fmt: skip
    rclient.rpush(reply_key(queues[1], 7, 1), reply)
    result = MessagingExecutor(redis_url=messaging_redis_url).execute(
        request(queues), ctx(tmp_path, deadline=time.monotonic() + 5)
    )
    assert result.status == "FAILED" and result.error_code == ERR_MESSAGING_REPLY
    assert problem in result.error_message, result.error_message


def test_without_redis_the_method_is_unavailable(tmp_path, monkeypatch, queues):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("FORMICARY_MESSAGING_REDIS_URL", raising=False)
    result = MessagingExecutor().execute(request(queues), ctx(tmp_path))
    assert result.status == "FAILED" and result.error_code == ERR_MESSAGING_UNAVAILABLE
    assert "needs Redis" in result.error_message and "standalone" in result.error_message


def test_redis_down_fails_with_a_clear_error(tmp_path, queues):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = MessagingExecutor(redis_url=f"redis://127.0.0.1:{port}/0").execute(
        request(queues), ctx(tmp_path)
    )
    assert result.status == "FAILED" and result.error_code == ERR_MESSAGING_REDIS


def test_missing_queue_names_are_rejected(tmp_path, messaging_redis_url):
    req = TaskRequest(task_execution_id=1, job_request_id=1, task_type="t", method="MESSAGING",
                      spec={"messaging_request_queue": "q"})  # fmt: skip
    result = MessagingExecutor(redis_url=messaging_redis_url).execute(req, ctx(tmp_path))
    assert result.status == "FAILED" and "messaging_reply_queue" in result.error_message
