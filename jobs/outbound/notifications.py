"""Email and Slack messages when a job or a task ends (the definition's `notify`, on the job or
on a task), with texts from the templates in templates/notifications/ (``job_*`` and ``task_*``)."""

from __future__ import annotations

import requests as http
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string

from jobs.definition.notify_rules import Notice, notices
from jobs.outbound.outcome import (
    job_outcome,
    previous_succeeded,
    previous_task_succeeded,
    rendered_job,
    rendered_task,
    task_outcome,
)
from jobs.states import TASK_TERMINAL, JobState, TaskState
from orgs.models import OrgConfig, User

SLACK_CONFIG = "SlackWebhookURL"  # secret org config: the Slack incoming-webhook URL


class NotSent(Exception):
    """A notice that could not be delivered now (the caller retries); the message says why."""


def job_notices(request_id: int) -> list[Notice]:
    """The channels a finished job notifies on, after `when`, `except` and the users' opt-outs."""
    outcome = job_outcome(request_id)
    if outcome.state == JobState.FILTERED:  # skip_if: the job never ran
        return []
    notify = rendered_job(outcome.request).notify
    if not notify:
        return []
    found = notices(notify, outcome.succeeded, previous_succeeded(outcome.request))
    return _without_opted_out(outcome.request.organization_id, found)


def task_notices(task_execution_id: int) -> list[Notice]:
    """The channels a finished task notifies on (its own `notify`), as ``job_notices``.

    A task read back in a running state was retried meanwhile: only its last attempt notifies. A
    SKIPPED task never ran and notifies no one (as a FILTERED job).
    """
    outcome = task_outcome(task_execution_id)
    if outcome.state not in TASK_TERMINAL or outcome.state == TaskState.SKIPPED:
        return []
    spec = rendered_task(outcome.request, outcome.task.task_type)
    if spec is None or not spec.notify:
        return []
    found = notices(spec.notify, outcome.succeeded, previous_task_succeeded(outcome))
    return _without_opted_out(outcome.request.organization_id, found)


def _without_opted_out(org_id: int, found: list[Notice]) -> list[Notice]:
    """Leaves out of emails the users who turned their notifications off (User.notify_enabled)."""
    kept = [_without_opted_out_one(org_id, n) for n in found]
    return [n for n in kept if n.recipients]


def _without_opted_out_one(org_id: int, notice: Notice) -> Notice:
    """Users who turned their notifications off (User.notify_enabled) are left out of emails."""
    if notice.channel != "email":
        return notice
    off = {
        e.lower()
        for pair in User.objects.filter(organization_id=org_id, notify_enabled=False)
        .filter(Q(email__in=notice.recipients) | Q(notify_email__in=notice.recipients))
        .values_list("email", "notify_email")
        for e in pair if e
    }  # fmt: skip
    return Notice(notice.channel, tuple(r for r in notice.recipients if r.lower() not in off))


def context_of(request_id: int, task_execution_id: int | None = None) -> dict[str, object]:
    """What the templates see: the job (and for a task notice the task) and how it ended."""
    if task_execution_id is not None:
        t = task_outcome(task_execution_id)
        return {
            "job": t.request, "task": t.task, "state": t.state, "succeeded": t.succeeded,
            "duration_secs": t.duration_secs, "error_message": t.task.error_message, "url": t.url,
        }  # fmt: skip
    outcome = job_outcome(request_id)
    return {
        "job": outcome.request, "state": outcome.state, "succeeded": outcome.succeeded,
        "duration_secs": outcome.duration_secs, "failed_task": outcome.failed_task,
        "error_message": outcome.error_message, "url": outcome.url,
    }  # fmt: skip


def send(request_id: int, notice: Notice, task_execution_id: int | None = None) -> None:
    """Deliver one channel's message about a job (or one of its tasks); raises NotSent when the
    server refused or did not answer."""
    ctx = context_of(request_id, task_execution_id)
    kind = "job" if task_execution_id is None else "task"
    if notice.channel == "email":
        _send_email(kind, notice.recipients, ctx)
    else:
        _send_slack(kind, ctx["job"].organization_id, notice.recipients, ctx)  # type: ignore[attr-defined]


def _send_email(kind: str, recipients: tuple[str, ...], ctx: dict[str, object]) -> None:
    subject = " ".join(render_to_string(f"notifications/{kind}_email_subject.txt", ctx).split())
    mail = EmailMultiAlternatives(
        subject,
        render_to_string(f"notifications/{kind}_email.txt", ctx),
        settings.DEFAULT_FROM_EMAIL,
        list(recipients),
    )
    mail.attach_alternative(render_to_string(f"notifications/{kind}_email.html", ctx), "text/html")
    try:
        mail.send()
    except OSError as exc:  # smtplib's errors are OSErrors
        raise NotSent(f"mail to {', '.join(recipients)}: {exc}") from exc


def _send_slack(kind: str, org_id: int, channels: tuple[str, ...], ctx: dict[str, object]) -> None:
    config = OrgConfig.objects.filter(organization_id=org_id, name=SLACK_CONFIG).first()
    if config is None or not config.plain_value():
        raise NotSent(f"no org config {SLACK_CONFIG}: Slack messages need the incoming-webhook URL")
    text = render_to_string(f"notifications/{kind}_slack.txt", ctx).strip()
    for channel in channels:
        try:
            resp = http.post(config.plain_value(), json={"channel": channel, "text": text}, timeout=10)
        except http.RequestException as exc:
            raise NotSent(f"Slack {channel}: {exc}") from exc
        if resp.status_code >= 300:
            raise NotSent(f"Slack {channel}: HTTP {resp.status_code}")
