"""Secret values never leave through the API, the UI or events: task outputs are masked before
they are shown, and error texts are masked before they are stored (the queen's doors in
``jobs/domain/transitions.py`` call ``redact_errors``)."""

from collections.abc import Iterable
from typing import Any

from ants.executors.base import MIN_SECRET_LENGTH, maskable_values
from jobs.models import JobConfig, JobRequest, JobRequestParam
from orgs.crypto import REDACTED
from orgs.models import OrgConfig, UserConfig

__all__ = ["MIN_SECRET_LENGTH", "redact", "redact_errors", "secret_values", "secret_values_of"]

# Fields of a task or job that carry text a task, a template or the queen wrote.
ERROR_FIELDS = ("error_message", "exit_message", "failed_command")


def secret_values(request: JobRequest) -> list[str]:
    rows: list[Any] = [p for p in request.params.all() if p.secret]
    rows += list(OrgConfig.objects.filter(organization_id=request.organization_id, secret=True))
    if request.user_id:
        rows += list(UserConfig.objects.filter(user_id=request.user_id, secret=True))
    rows += list(JobConfig.objects.filter(organization_id=request.organization_id, job_type=request.job_type,
                                          secret=True))  # fmt: skip
    return maskable_values(row.plain_value() for row in rows)


def secret_values_of(request_ids: Iterable[int]) -> list[str]:
    """The secret values any of these requests can see (its params, its organization's and job
    type's secret configs)."""
    ids = list(request_ids)
    owners = set(JobRequest.objects.filter(pk__in=ids).values_list("organization_id", "job_type"))
    if not owners:
        return []
    rows: list[Any] = list(JobRequestParam.objects.filter(job_request_id__in=ids, secret=True))
    rows += list(OrgConfig.objects.filter(organization_id__in={org for org, _ in owners}, secret=True))
    for org, job_type in owners:
        rows += list(JobConfig.objects.filter(organization_id=org, job_type=job_type, secret=True))
    return maskable_values(row.plain_value() for row in rows)


def redact(value: Any, secrets: list[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    return value


def redact_errors(request_ids: Iterable[int], fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with every secret of these requests masked in their error texts. Looks secrets
    up only when there is such a text (failures), never on the path of a task that completed."""
    if not any(fields.get(name) for name in ERROR_FIELDS):
        return fields
    secrets = secret_values_of(request_ids)
    if not secrets:
        return fields
    return {k: redact(v, secrets) if k in ERROR_FIELDS and v else v for k, v in fields.items()}
