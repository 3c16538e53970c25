"""Celery tasks of jobs: thin wrappers around jobs/outbound. The queen enqueues them after its
commit (jobs/outbound/hooks.py); a retry is the same task enqueued again with ``attempt + 1``."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from jobs.definition.notify_rules import Notice
from jobs.domain.specs import graph_of
from jobs.models import JobRequest
from jobs.outbound import escalations, metrics, notifications, runner, webhooks
from jobs.services import retention

log = logging.getLogger(__name__)
LIMITS = {"soft_time_limit": 60, "time_limit": 90}  # an SMTP or HTTP call has a 10 s timeout of its own


@shared_task(name="jobs.tasks.job_ended", **LIMITS)
def job_ended(request_id: int) -> None:
    """Fans a finished job out to one task per notification channel and its webhook."""
    for notice in notifications.job_notices(request_id):
        runner.enqueue("jobs.tasks.send_notification", request_id=request_id, channel=notice.channel,
                       recipients=list(notice.recipients), attempt=1)  # fmt: skip
    definition_id = JobRequest.objects.values_list("job_definition_id", flat=True).get(pk=request_id)
    if graph_of(definition_id).webhook:
        runner.enqueue("jobs.tasks.call_webhook", request_id=request_id, task_execution_id=None, attempt=1)


@shared_task(name="jobs.tasks.task_ended", **LIMITS)
def task_ended(request_id: int, task_execution_id: int) -> None:
    """Fans a finished task with a `notify` out to one task per notification channel."""
    for notice in notifications.task_notices(task_execution_id):
        runner.enqueue("jobs.tasks.send_notification", request_id=request_id, channel=notice.channel,
                       recipients=list(notice.recipients), attempt=1,
                       task_execution_id=task_execution_id)  # fmt: skip


@shared_task(name="jobs.tasks.send_notification", **LIMITS)
def send_notification(
    request_id: int,
    channel: str,
    recipients: list[str],
    attempt: int = 1,
    task_execution_id: int | None = None,
) -> None:
    """One email or Slack message about a job, or about one of its tasks with ``task_execution_id``."""
    try:
        notifications.send(request_id, Notice(channel, tuple(recipients)), task_execution_id)
    except notifications.NotSent as exc:
        metrics.NOTIFICATION_FAILURES.labels(channel=channel).inc()
        log.warning("notification of request %s (attempt %s): %s", request_id, attempt, exc)
        if attempt < settings.FORMICARY_OUTBOUND_ATTEMPTS:
            runner.enqueue("jobs.tasks.send_notification", countdown=runner.backoff(attempt), request_id=request_id,
                           channel=channel, recipients=recipients, attempt=attempt + 1,
                           task_execution_id=task_execution_id)  # fmt: skip


@shared_task(name="jobs.tasks.send_escalation", **LIMITS)
def send_escalation(review_id: int, attempt: int = 1) -> None:
    """The escalation mail of a manual approval past its SLA deadline (jobs/outbound/escalations.py)."""
    try:
        escalations.send(review_id)
    except notifications.NotSent as exc:
        metrics.NOTIFICATION_FAILURES.labels(channel="email").inc()
        log.warning("escalation mail of review %s (attempt %s): %s", review_id, attempt, exc)
        if attempt < settings.FORMICARY_OUTBOUND_ATTEMPTS:
            runner.enqueue("jobs.tasks.send_escalation", countdown=runner.backoff(attempt), review_id=review_id,
                           attempt=attempt + 1)  # fmt: skip


@shared_task(name="jobs.tasks.call_webhook", **LIMITS)
def call_webhook(request_id: int, task_execution_id: int | None = None, attempt: int = 1) -> None:
    record = webhooks.deliver(request_id, task_execution_id, attempt)
    if record is None or record.ok:
        return
    metrics.WEBHOOK_FAILURES.labels(level="task" if task_execution_id else "job").inc()
    if attempt < settings.FORMICARY_OUTBOUND_ATTEMPTS:
        runner.enqueue("jobs.tasks.call_webhook", countdown=runner.backoff(attempt), request_id=request_id,
                       task_execution_id=task_execution_id, attempt=attempt + 1)  # fmt: skip


@shared_task(name="jobs.tasks.prune_history", soft_time_limit=3000, time_limit=3300)
def prune_history() -> int:
    """Retention, hourly from beat: finished requests older than FORMICARY_RETENTION_DAYS."""
    days = settings.FORMICARY_RETENTION_DAYS
    if days <= 0:
        return 0
    return retention.requests_prune(older_than=timedelta(days=days)).requests
