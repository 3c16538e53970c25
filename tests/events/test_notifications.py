"""`notify` and `webhook` end to end: a queen and a SHELL ant in threads run the job, the
in-process outbound pool delivers to a real SMTP server (aiosmtpd: its own process in the first
test) and a local HTTP server (failing once to show the retries)."""

import hashlib
import hmac

import pytest
from prometheus_client import REGISTRY

from jobs.models import WebhookDelivery
from jobs.services.requests import request_submit
from orgs.models import OrgConfig, User
from orgs.services import config_save
from tests.conftest import upload
from tests.engine.harness import wait_for_state
from tests.events.conftest import eventually

pytestmark = pytest.mark.usefixtures("outbound_in_process")

NOTIFY = """\
job_type: notified
required_params: [Code]
notify:
  email:
    recipients: [ops@example.com, quiet@example.com]
    when: onFailure
  slack:
    recipients: ["#builds"]
    except: '{{if eq .Code "7"}}true{{end}}'
tasks:
- task_type: build
  method: SHELL
  script: ["echo building", "exit {{.Code}}"]
"""


def run(api, member, text: str, **params):  # type: ignore[no-untyped-def]
    resp = upload(api, text)
    assert resp.status_code in (200, 201), resp.content
    request = request_submit(org_id=member.org_id, user=member.user, job_type=resp.json()["job_type"],
                             params=params)  # fmt: skip
    return wait_for_state(request.pk)


def test_failed_job_mails_and_posts_to_slack_skipping_opted_out_users(
    standalone, api, alice, smtp_server, http_sink
):  # type: ignore[no-untyped-def]
    config_save(OrgConfig(organization_id=alice.org_id), name="SlackWebhookURL", value=f"{http_sink.url}/slack",
                secret=True)  # fmt: skip
    User.objects.create(username="quiet", email="quiet@example.com", organization_id=alice.org_id,
                        notify_enabled=False)  # fmt: skip
    http_sink.fail_first = 1  # Slack refuses the first post: it is sent again after a backoff, and counted
    failures = REGISTRY.get_sample_value("formicary_notification_failures_total", {"channel": "slack"}) or 0
    done = run(api, alice, NOTIFY, Code="3")
    assert done.job_state == "FAILED"
    (mail,) = eventually(lambda: smtp_server.messages())  # received by aiosmtpd, its own process
    assert mail["X-RcptTo"] == "ops@example.com"  # quiet@ turned notifications off
    assert mail["Subject"] == f"[Formicary] notified #{done.pk} FAILED"
    text = (
        next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    )
    assert "Failing task: build (exit code 3)" in text
    assert f"http://localhost:7777/jobs/requests/{done.pk}" in text
    first, retried = eventually(lambda: len(http_sink.received) == 2 and http_sink.received)
    assert first.body == retried.body and retried.path == "/slack" and retried.json()["channel"] == "#builds"
    assert "notified" in retried.json()["text"] and "FAILED" in retried.json()["text"]
    after = REGISTRY.get_sample_value("formicary_notification_failures_total", {"channel": "slack"})
    assert after == failures + 1


def test_on_failure_also_tells_the_first_success_after_a_failure_and_except_suppresses(
    standalone, api, alice, smtp_server, http_sink
):  # type: ignore[no-untyped-def]
    config_save(OrgConfig(organization_id=alice.org_id), name="SlackWebhookURL", value=f"{http_sink.url}/slack",
                secret=True)  # fmt: skip
    first = run(api, alice, NOTIFY, Code="0")  # a success with no failure before: no mail
    failed = run(api, alice, NOTIFY, Code="7")  # a failure: mail; `except` renders true: no Slack
    eventually(lambda: len(smtp_server.messages()) == 1)
    fixed = run(api, alice, NOTIFY, Code="0")  # the first success after the failure: mail
    eventually(lambda: len(smtp_server.messages()) == 2)
    run(api, alice, NOTIFY, Code="0")  # a success after a success: no mail
    eventually(lambda: len(http_sink.received) == 3)  # Slack: every run but the excepted one
    subjects = [m["Subject"] for m in smtp_server.messages()]
    assert subjects == [
        f"[Formicary] notified #{failed.pk} FAILED",
        f"[Formicary] notified #{fixed.pk} COMPLETED",
    ]
    assert first.job_state == "COMPLETED"
    assert len(smtp_server.messages()) == 2


WEBHOOK = """\
job_type: hooked
webhook:
  url: "{{.HookURL}}/job"
  headers: {X-Job: "{{.JobType}}"}
  query: {id: "{{.JobID}}"}
tasks:
- task_type: step
  method: SHELL
  script: ["echo step"]
  webhook: {url: "{{.HookURL}}/task"}
"""


def test_job_and_task_webhooks_are_signed_retried_and_recorded(standalone, api, alice, http_sink, client):  # type: ignore[no-untyped-def]
    config_save(OrgConfig(organization_id=alice.org_id), name="WebhookSecret", value="s3cret", secret=True)
    http_sink.fail_first = 1  # the first call fails: it is retried after a backoff
    done = run(api, alice, WEBHOOK, HookURL=http_sink.url)
    assert done.job_state == "COMPLETED"
    eventually(lambda: len(http_sink.received) == 3)
    for got in http_sink.received:
        expected = "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
        assert got.headers["X-Formicary-Signature-256"] == expected
    job_call = next(r for r in http_sink.received if r.path.startswith("/job"))
    assert job_call.path == f"/job?id={done.pk}" and job_call.headers["X-Job"] == "hooked"
    body = job_call.json()
    assert (
        body["event"] == "job.finished" and body["state"] == "COMPLETED" and body["job_request_id"] == done.pk
    )
    task_call = next(r for r in http_sink.received if r.path == "/task").json()
    assert task_call["event"] == "task.finished" and task_call["task_type"] == "step"
    assert task_call["exit_code"] == "0" or task_call["state"] == "COMPLETED"
    deliveries = eventually(lambda: WebhookDelivery.objects.filter(job_request_id=done.pk).count() == 3 and list(
        WebhookDelivery.objects.filter(job_request_id=done.pk).order_by("id")))  # fmt: skip
    # the job's and the task's calls run on two threads: which records first is not fixed
    assert sorted((d.attempt, d.status_code) for d in deliveries) == [(1, 200), (1, 500), (2, 200)]
    listed = api.get(f"/api/jobs/requests/{done.pk}/webhooks")
    assert listed.status_code == 200, listed.content
    rows = listed.json()["Records"]
    assert {(r["attempt"], r["status_code"]) for r in rows} == {(1, 500), (1, 200), (2, 200)}
    assert "HTTP 500" in next(r["error"] for r in rows if r["status_code"] == 500)
    client.force_login(alice.user)
    page = client.get(f"/jobs/requests/{done.pk}")
    assert page.status_code == 200 and b"webhook-deliveries" in page.content
