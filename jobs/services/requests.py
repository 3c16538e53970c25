"""Submitting job requests: validation of the job type, version and params, then a PENDING row."""

from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from jobs import selectors
from jobs.models import JobDefinition, JobRequest, JobRequestParam
from jobs.queen import events
from orgs.crypto import is_secret_name

MAX_PARAMS = 200
MAX_PARAM_VALUE = 64 * 1024
# What request_submit reads of the definition it resolves (see resolve_definition).
_SUBMIT_FIELDS = ("id", "organization_id", "job_type", "version", "sem_version", "disabled")
_REQUIRED_PARAMS = KeyTransform("required_params", "spec")


def _param_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if value is None:
        return ""
    raise ValidationError(f"params.{name}: must be a string, number or boolean")


def _pick(qs: QuerySet[JobDefinition], job_version: str) -> JobDefinition | None:
    qs = qs.only(*_SUBMIT_FIELDS).annotate(required_params=_REQUIRED_PARAMS)
    if not job_version:
        return qs.filter(is_latest=True).first()
    found = qs.filter(sem_version=job_version).order_by("-version").first()
    if found is None and job_version.isdigit():
        found = qs.filter(version=int(job_version)).first()
    return found


def resolve_definition(org_id: int, job_type: str, job_version: str = "") -> JobDefinition:
    """The definition a new request of ``job_type`` runs: the latest, or the version asked for.

    Public plugins of other organizations resolve by type and version too. The definition comes
    with only the columns a submit needs (not the YAML text or the parsed spec, the heavy ones)
    and its ``required_params`` read out of the spec by the database.
    """
    own = selectors.definitions_live(org_id).filter(job_type=job_type)
    found = _pick(own, job_version)
    # an organization's own job type hides public plugins of that type; asked only when the
    # pick found nothing, so the usual submit costs one query
    if found is None and not own.exists():
        found = _pick(selectors.plugin_versions(job_type), job_version)
    if found is None:
        version = f" version {job_version!r}" if job_version else ""
        raise ValidationError(f"job_type: unknown job type {job_type!r}{version}")
    if found.disabled:
        raise ValidationError(f"job_type: job type {job_type!r} is disabled")
    return found


def request_submit(
    *,
    org_id: int,
    user: Any,
    job_type: str,
    job_version: str = "",
    params: dict[str, Any] | None = None,
    job_priority: int = 0,
    job_group: str = "",
    user_key: str = "",
    scheduled_at: datetime | None = None,
    parent: JobRequest | None = None,
    cron_key: str | None = None,
    secret_params: set[str] | None = None,
) -> JobRequest:
    params = params or {}
    if not isinstance(params, dict):
        raise ValidationError("params: must be an object of name to value")
    if len(params) > MAX_PARAMS:
        raise ValidationError(f"params: at most {MAX_PARAMS} params")
    values = {str(k): _param_value(str(k), v) for k, v in params.items()}
    for name, value in values.items():
        if not name or len(name) > 200:
            raise ValidationError("params: names must be 1 to 200 characters")
        if len(value) > MAX_PARAM_VALUE:
            raise ValidationError(f"params.{name}: longer than {MAX_PARAM_VALUE} characters")
    definition = resolve_definition(org_id, job_type, job_version)
    required = list(definition.required_params or [])
    missing = [p for p in required if not values.get(p)]
    if missing:
        raise ValidationError(
            f"params: missing required params {', '.join(missing)} for job type {job_type!r}"
        )
    secret_params = secret_params or set()
    # a request without params is one INSERT: no transaction around it to BEGIN and COMMIT
    with transaction.atomic() if values else nullcontext():
        request = JobRequest.objects.create(
            organization_id=org_id,
            user=user if getattr(user, "pk", None) else None,
            job_definition=definition,
            job_type=definition.job_type,
            job_version=definition.sem_version or str(definition.version),
            job_priority=job_priority,
            job_group=job_group,
            user_key=user_key,
            scheduled_at=scheduled_at or timezone.now(),
            parent=parent,
            cron_key=cron_key,
            cron_triggered=cron_key is not None,
        )
        if values:
            rows = []
            for name, value in values.items():
                row = JobRequestParam(
                    organization_id=org_id, job_request=request, name=name,
                    secret=name in secret_params or is_secret_name(name),
                )  # fmt: skip
                row.set_value(value)
                rows.append(row)
            JobRequestParam.objects.bulk_create(rows)
        events.request_submitted(request)
    return request
