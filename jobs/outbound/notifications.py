"""Email and Slack messages when a job ends (the definition's `notify`), with texts from the
templates in templates/notifications/."""

from __future__ import annotations

import requests as http
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string

from jobs.definition.notify_rules import Notice, notices
from jobs.outbound.outcome import JobOutcome, job_outcome, previous_succeeded, rendered_job
from jobs.states import JobState
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
    return [n for n in (_without_opted_out(outcome, n) for n in found) if n.recipients]


def _without_opted_out(outcome: JobOutcome, notice: Notice) -> Notice:
    """Users who turned their notifications off (User.notify_enabled) are left out of emails."""
    if notice.channel != "email":
        return notice
    off = {
        e.lower()
        for pair in User.objects.filter(organization_id=outcome.request.organization_id, notify_enabled=False)
        .filter(Q(email__in=notice.recipients) | Q(notify_email__in=notice.recipients))
        .values_list("email", "notify_email")
        for e in pair if e
    }  # fmt: skip
    return Notice(notice.channel, tuple(r for r in notice.recipients if r.lower() not in off))


def context_of(outcome: JobOutcome) -> dict[str, object]:
    return {
        "job": outcome.request, "state": outcome.state, "succeeded": outcome.succeeded,
        "duration_secs": outcome.duration_secs, "failed_task": outcome.failed_task,
        "error_message": outcome.error_message, "url": outcome.url,
    }  # fmt: skip


def send(request_id: int, notice: Notice) -> None:
    """Deliver one channel's message; raises NotSent when the server refused or did not answer."""
    outcome = job_outcome(request_id)
    ctx = context_of(outcome)
    if notice.channel == "email":
        _send_email(notice.recipients, ctx)
    else:
        _send_slack(outcome.request.organization_id, notice.recipients, ctx)


def _send_email(recipients: tuple[str, ...], ctx: dict[str, object]) -> None:
    subject = " ".join(render_to_string("notifications/job_email_subject.txt", ctx).split())
    mail = EmailMultiAlternatives(
        subject,
        render_to_string("notifications/job_email.txt", ctx),
        settings.DEFAULT_FROM_EMAIL,
        list(recipients),
    )
    mail.attach_alternative(render_to_string("notifications/job_email.html", ctx), "text/html")
    try:
        mail.send()
    except OSError as exc:  # smtplib's errors are OSErrors
        raise NotSent(f"mail to {', '.join(recipients)}: {exc}") from exc


def _send_slack(org_id: int, channels: tuple[str, ...], ctx: dict[str, object]) -> None:
    config = OrgConfig.objects.filter(organization_id=org_id, name=SLACK_CONFIG).first()
    if config is None or not config.plain_value():
        raise NotSent(f"no org config {SLACK_CONFIG}: Slack messages need the incoming-webhook URL")
    text = render_to_string("notifications/job_slack.txt", ctx).strip()
    for channel in channels:
        try:
            resp = http.post(config.plain_value(), json={"channel": channel, "text": text}, timeout=10)
        except http.RequestException as exc:
            raise NotSent(f"Slack {channel}: {exc}") from exc
        if resp.status_code >= 300:
            raise NotSent(f"Slack {channel}: HTTP {resp.status_code}")
