"""The escalation mail of a manual approval whose SLA deadline passed with ``timeout_action:
ESCALATE`` (jobs/domain/approvals.py records the escalation, a Celery task sends this)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage

from jobs.domain import approvals
from jobs.domain.specs import graph_of, task_of
from jobs.models import ApprovalReview
from jobs.outbound.notifications import NotSent


def send(review_id: int) -> None:
    """Mail the policy's ``escalation_recipients`` its ``escalation_message``, with a link to the
    request; raises NotSent when the server refused or did not answer."""
    review = ApprovalReview.objects.select_related("job_request").filter(pk=review_id).first()
    if review is None:
        return  # the request was deleted meanwhile
    request = review.job_request
    policy = approvals.policy_of(task_of(graph_of(request.job_definition_id), review.task_type))
    # the reference's lists may name Slack channels ("#ops") beside addresses: mail goes to addresses
    recipients = [r for r in policy.escalation_recipients if "@" in r]
    if not recipients:
        return
    link = f"{settings.FORMICARY_BASE_URL.rstrip('/')}/jobs/requests/{request.pk}"
    subject = f"Approval overdue: {request.job_type} #{request.pk} task {review.task_type}"
    body = "\n\n".join(
        part for part in (
            policy.escalation_message,
            f"Task {review.task_type} of job {request.job_type} #{request.pk} has waited for approval past its "
            f"SLA deadline ({policy.sla_deadline_secs:g}s). It keeps waiting.",
            f"Review it: {link}",
        ) if part
    )  # fmt: skip
    mail = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    try:
        mail.send()
    except OSError as exc:  # smtplib's errors are OSErrors
        raise NotSent(f"mail to {', '.join(recipients)}: {exc}") from exc
