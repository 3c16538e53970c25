"""Secret values never leave through the API: task outputs are masked before they are shown."""

from typing import Any

from jobs.models import JobConfig, JobRequest
from orgs.crypto import REDACTED
from orgs.models import OrgConfig, UserConfig

# Shorter values would mask ordinary words; the ant masks on the same rule.
MIN_SECRET_LENGTH = 4


def secret_values(request: JobRequest) -> list[str]:
    rows: list[Any] = [p for p in request.params.all() if p.secret]
    rows += list(OrgConfig.objects.filter(organization_id=request.organization_id, secret=True))
    if request.user_id:
        rows += list(UserConfig.objects.filter(user_id=request.user_id, secret=True))
    rows += list(JobConfig.objects.filter(organization_id=request.organization_id, job_type=request.job_type,
                                          secret=True))  # fmt: skip
    values = {row.plain_value() for row in rows}
    # longest first, so a secret that contains another is masked whole
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


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
