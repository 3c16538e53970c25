"""`notify` on a task: when that task ends, its email goes to an SMTP server running as its own
process (aiosmtpd) and its Slack message to a local HTTP server, through the same outbound path
(Celery tasks, here on the in-process pool) as the job's `notify`; `when` and `except` follow the
job-level rules, judged on the task."""

from email.message import Message

import pytest

from jobs.services.requests import request_submit
from orgs.models import OrgConfig, User
from orgs.services import config_save
from tests.conftest import upload
from tests.engine.harness import wait_for_state
from tests.events.conftest import eventually

pytestmark = pytest.mark.usefixtures("outbound_in_process")

TASK_NOTIFY = """\
job_type: task-notified
required_params: [Code]
tasks:
- task_type: build
  method: SHELL
  script: ["echo building", "exit {{.Code}}"]
  notify:
    email:
      recipients: [builders@example.com, quiet@example.com]
      when: onFailure
    slack:
      recipients: ["#builds"]
      except: '{{if eq .Code "7"}}true{{end}}'
  on_completed: report
- task_type: report
  method: SHELL
  script: ["echo report"]
  notify:
    email: {recipients: [never@example.com], when: never}
    slack: {recipients: ["#reports"], when: onSuccess}
"""


def run(api, member, **params):  # type: ignore[no-untyped-def]
    resp = upload(api, TASK_NOTIFY)
    assert resp.status_code in (200, 201), resp.content
    assert "notify" not in str(resp.json().get("warnings"))  # acted on now, no "not acted on" warning
    request = request_submit(org_id=member.org_id, user=member.user, job_type="task-notified", params=params)
    return wait_for_state(request.pk)


def text_of(mail: Message) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def test_task_notify_mails_and_posts_when_that_task_ends(standalone, api, alice, smtp_server, http_sink):  # type: ignore[no-untyped-def]
    config_save(OrgConfig(organization_id=alice.org_id), name="SlackWebhookURL", value=f"{http_sink.url}/slack",
                secret=True)  # fmt: skip
    User.objects.create(username="quiet", email="quiet@example.com", organization_id=alice.org_id,
                        notify_enabled=False)  # fmt: skip
    failed = run(api, alice, Code="3")  # build fails: mail (onFailure) and Slack; report never runs
    assert failed.job_state == "FAILED"
    (mail,) = eventually(lambda: smtp_server.messages())
    assert mail["X-RcptTo"] == "builders@example.com"  # quiet@ turned notifications off
    assert mail["Subject"] == f"[Formicary] task-notified #{failed.pk} task build FAILED"
    assert "Task build of job task-notified" in text_of(mail) and "(exit code 3)" in text_of(mail)
    assert f"/jobs/requests/{failed.pk}" in text_of(mail)
    slack = eventually(lambda: http_sink.received and http_sink.received[0])
    assert slack.path == "/slack" and slack.json()["channel"] == "#builds"
    assert "task `build` FAILED" in slack.json()["text"]

    fixed = run(api, alice, Code="0")  # the first success of build after its failure: mail again
    assert fixed.job_state == "COMPLETED"
    eventually(lambda: len(smtp_server.messages()) == 2)
    # Slack: build (always) and report (onSuccess); report's email is `when: never`
    posts = eventually(lambda: len(http_sink.received) == 3 and http_sink.received[1:])
    assert sorted(p.json()["channel"] for p in posts) == ["#builds", "#reports"]
    assert (
        smtp_server.messages()[1]["Subject"] == f"[Formicary] task-notified #{fixed.pk} task build COMPLETED"
    )

    run(api, alice, Code="0")  # a success after a success: no mail; both Slack posts
    excepted = run(api, alice, Code="7")  # a failure whose `except` renders true: mail, no Slack
    eventually(lambda: len(smtp_server.messages()) == 3)
    assert (
        smtp_server.messages()[2]["Subject"] == f"[Formicary] task-notified #{excepted.pk} task build FAILED"
    )
    eventually(lambda: len(http_sink.received) == 5)
    assert all("never@example.com" not in (m["X-RcptTo"] or "") for m in smtp_server.messages())
