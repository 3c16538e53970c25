"""The distributed shape: the queen enqueues on the Redis broker and a real `celery worker`
process (another process, the test database) sends the job's and the task's notification mail
to an SMTP server that is a process too (aiosmtpd)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.conftest import database_url
from tests.engine.harness import wait_for_state
from tests.events.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (hrun starts Redis)")

DEFINITION = """\
job_type: mailed-by-celery
notify:
  email: {recipients: [team@example.com]}
tasks:
- task_type: only
  method: SHELL
  script: ["echo hi"]
  notify:
    email: {recipients: [task-team@example.com]}
"""


@pytest.fixture
def celery_worker(smtp_server, settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.FORMICARY_OUTBOUND_IN_PROCESS = False  # the queen enqueues on the broker
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
           "EMAIL_URL": f"smtp://127.0.0.1:{settings.EMAIL_PORT}", "FORMICARY_OUTBOUND_IN_PROCESS": "false"}  # fmt: skip
    log = (tmp_path / "celery.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "formicary_site.celery", "worker", "--pool=solo", "-l", "info",
         "--without-mingle", "--without-gossip", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    print((tmp_path / "celery.log").read_text()[-4000:])


def test_a_real_celery_worker_delivers_the_notification(standalone, celery_worker, smtp_server, api, alice):  # type: ignore[no-untyped-def]
    resp = upload(api, DEFINITION)
    assert resp.status_code == 201, resp.content
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="mailed-by-celery", params={})
    assert wait_for_state(request.pk).job_state == "COMPLETED"
    mails = eventually(lambda: len(smtp_server.messages()) == 2 and smtp_server.messages(), timeout=60)
    assert {(m["X-RcptTo"], m["Subject"]) for m in mails} == {
        ("team@example.com", f"[Formicary] mailed-by-celery #{request.pk} COMPLETED"),  # the job's notify
        (
            "task-team@example.com",
            f"[Formicary] mailed-by-celery #{request.pk} task only COMPLETED",
        ),  # the task's
    }
    assert celery_worker.poll() is None  # the worker, not this process, sent it
