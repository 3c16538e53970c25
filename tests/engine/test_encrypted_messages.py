"""FORMICARY_MESSAGE_ENCRYPTION end to end: a queen and an ant, each its own ``manage.py``
process, run a job over the test Redis. Every command sent to Redis meanwhile (MONITOR) and every
stream entry left afterwards (XRANGE) is searched for the script's text, a secret config and a
value the task returns: with encryption on none is there and the job completes; with it off the
same job completes and they are there (so the search can fail)."""

from __future__ import annotations

import os
import secrets
import threading
import uuid

import pytest
import redis

from ants.messaging import transport_from_url
from jobs.models import TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.conftest import Processes
from tests.engine.harness import wait_for_state

JOB = """\
job_type: sealed-{tag}
tasks:
- task_type: t
  method: SHELL
  script:
  - echo {marker}-script
  - test "${{#DEPLOY_TOKEN}}" -gt 20
  - echo "::add-task-context Out::{marker}-reply"
"""


class Monitor:
    """Every command Redis receives while it runs (MONITOR on its own connection)."""

    def __init__(self, url: str) -> None:
        self.commands: list[str] = []
        self._client = redis.Redis.from_url(url)
        self._monitor = self._client.monitor().__enter__()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.commands.append(self._monitor.next_command()["command"])
            except Exception:
                return

    def stop(self) -> str:
        self._stop.set()
        self._client.ping()  # one more line lets the reader see the flag
        self._thread.join(timeout=10)
        self._monitor.__exit__()
        return "\n".join(self.commands)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "clear"])
def test_no_script_secret_or_reply_in_clear_on_redis_and_the_job_completes(
    encrypted, api, alice, tmp_path, transactional_db, use_transport
):  # type: ignore[no-untyped-def]
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (scripts/test starts Redis)")
    tag, marker, token = uuid.uuid4().hex[:8], f"Mark{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(24)
    key = secrets.token_urlsafe(32)
    assert upload(api, JOB.format(tag=tag, marker=marker)).status_code == 201
    made = api.post(f"/api/jobs/definitions/sealed-{tag}/configs",
                    {"name": "DEPLOY_TOKEN", "value": token, "secret": True}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content

    processes = Processes(tmp_path)
    if encrypted:
        processes.env.update(FORMICARY_MESSAGE_ENCRYPTION="true", FORMICARY_MESSAGE_KEY=key)
    use_transport(transport_from_url(url, prefix=processes.prefix, message_key=key if encrypted else ""))
    monitor = Monitor(url)
    try:
        processes.start_queen()
        processes.start_ant("ant-a", ["shared"])
        processes.wait_ready()
        request = request_submit(org_id=alice.org_id, user=alice.user, job_type=f"sealed-{tag}")
        done = wait_for_state(request.pk, timeout=90)
        assert done.job_state == "COMPLETED", processes.logs()
        task = TaskExecution.objects.get(job_execution__job_request=request)
        assert task.context.get("Out") == f"{marker}-reply"  # the reply was opened by the queen
        client = redis.Redis.from_url(url)
        left = [
            fields
            for stream in client.scan_iter(match=f"{processes.prefix}:*", _type="stream")
            for _id, fields in client.xrange(stream)
        ]
    finally:
        wire = monitor.stop()
        processes.stop()
    stored = b"\n".join(b" ".join(k + b"=" + v for k, v in f.items()) for f in left).decode(errors="replace")
    assert f"{processes.prefix}:ant:ant-a:tasks" in wire  # the monitor saw the traffic
    assert any(b"s" in f for f in left) == encrypted  # log lines stay in their task's stream
    for text in (f"{marker}-script", f"{marker}-reply", token):
        assert (text in wire) is (not encrypted), text
        assert text not in stored or not encrypted, text
