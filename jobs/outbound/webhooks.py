"""Calls of a job's or task's `webhook` (`url`, `headers`, `query`, rendered with the job's data):
a signed JSON POST, each attempt recorded as a WebhookDelivery."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests as http

from jobs.models import JobRequest, TaskExecution, WebhookDelivery
from jobs.outbound.outcome import job_outcome, job_payload, rendered_job, rendered_task, task_payload
from orgs.models import OrgConfig

SECRET_CONFIG = "WebhookSecret"  # secret org config: the HMAC key of X-Formicary-Signature-256
SIGNATURE_HEADER = "X-Formicary-Signature-256"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_of(request_id: int, task_execution_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the rendered `webhook` mapping, the JSON body) of a finished job or task; empty without one."""
    if task_execution_id is None:
        outcome = job_outcome(request_id)
        return rendered_job(outcome.request).webhook or {}, {"event": "job.finished", **job_payload(outcome)}
    task = TaskExecution.objects.select_related("job_execution").get(pk=task_execution_id)
    request = JobRequest.objects.select_related("last_execution", "job_definition").get(pk=request_id)
    spec = rendered_task(request, task.task_type)
    body = {"event": "task.finished", "job_request_id": request.pk, "job_execution_id": task.job_execution_id,
            "job_type": request.job_type, **task_payload(task)}  # fmt: skip
    return (spec.webhook if spec else {}) or {}, body


def deliver(request_id: int, task_execution_id: int | None, attempt: int) -> WebhookDelivery | None:
    """One attempt; returns its record (None when there is no webhook to call)."""
    hook, body = webhook_of(request_id, task_execution_id)
    url = str(hook.get("url") or "").strip()
    if not url:
        return None
    org_id = JobRequest.objects.values_list("organization_id", flat=True).get(pk=request_id)
    data = json.dumps({**body, "delivery_attempt": attempt}, default=str).encode()
    headers = {str(k): str(v) for k, v in (hook.get("headers") or {}).items()}
    headers["Content-Type"] = "application/json"
    secret = OrgConfig.objects.filter(organization_id=org_id, name=SECRET_CONFIG).first()
    if secret is not None and secret.plain_value():
        headers[SIGNATURE_HEADER] = signature(secret.plain_value(), data)
    query = {str(k): str(v) for k, v in (hook.get("query") or {}).items()}
    record = WebhookDelivery(organization_id=org_id, job_request_id=request_id, task_execution_id=task_execution_id,
                             url=url[:2000], attempt=attempt)  # fmt: skip
    try:
        resp = http.post(url, data=data, headers=headers, params=query, timeout=10, allow_redirects=False)
        record.status_code = resp.status_code
        if not record.ok:
            record.error = f"HTTP {resp.status_code}: {resp.text[:500]}"
    except http.RequestException as exc:
        record.error = str(exc)[:2000]
    record.save()
    return record
