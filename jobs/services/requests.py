"""Submitting job requests: validation of the job type, version and params, then a PENDING row."""

from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from jobs import fastsql, selectors
from jobs.domain import events
from jobs.models import JobDefinition, JobRequest, JobRequestParam
from orgs import audit, usage
from orgs.crypto import is_secret_name, short_secret_problem

MAX_PARAMS = 200
MAX_PARAM_VALUE = 64 * 1024
MAX_SUBMIT_MANY = 1000
# job_priority bounds, the same for the API and the UI's submit form
MIN_JOB_PRIORITY, MAX_JOB_PRIORITY = -1000, 1000
# What request_submit reads of the definition it resolves (see resolve_definition).
_SUBMIT_FIELDS = ("id", "organization_id", "job_type", "version", "sem_version", "disabled")
_REQUIRED_PARAMS = KeyTransform("required_params", "spec")
# a request carries its definition's platform, as in the reference (the requests list filters by it)
_PLATFORM = KeyTransform("platform", "spec")


class _SubmitAnnotations(TypedDict):
    required_params: list[str] | None
    spec_platform: str | None
    plan_cpu_quota: int | None


if TYPE_CHECKING:  # django-stubs-ext is a test dependency
    from django_stubs_ext import WithAnnotations

    # the definition as resolve_definition loads it: the submit's columns and these annotations
    SubmitDefinition = WithAnnotations[JobDefinition, _SubmitAnnotations]


def _param_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if value is None:
        return ""
    raise ValidationError(f"params.{name}: must be a string, number or boolean")


def _pick(qs: QuerySet[JobDefinition], job_version: str, org_id: int) -> "SubmitDefinition | None":
    qs = qs.only(*_SUBMIT_FIELDS).annotate(
        required_params=_REQUIRED_PARAMS, spec_platform=_PLATFORM, plan_cpu_quota=usage.cpu_quota_of(org_id)
    )
    if not job_version:
        return qs.filter(is_latest=True).first()
    found = qs.filter(sem_version=job_version).order_by("-version").first()
    if found is None and job_version.isascii() and job_version.isdigit():  # not '²'
        found = qs.filter(version=int(job_version)).first()
    return found


def resolve_definition(org_id: int, job_type: str, job_version: str = "") -> "SubmitDefinition":
    """The definition a new request of ``job_type`` runs: the latest, or the version asked for.

    Public plugins of other organizations resolve by type and version too. The definition comes
    with only the columns a submit needs (not the YAML text or the parsed spec, the heavy ones)
    and its ``required_params`` read out of the spec by the database, and the submitting
    organization's plan ``cpu_quota`` (``plan_cpu_quota``, None without a plan).
    """
    own = selectors.definitions_live(org_id).filter(job_type=job_type)
    found = _pick(own, job_version, org_id)
    # an organization's own job type hides public plugins of that type; asked only when the
    # pick found nothing, so the usual submit costs one query
    if found is None and not own.exists():
        found = _pick(selectors.plugin_versions(job_type), job_version, org_id)
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
    triggered_by: str = "",
) -> JobRequest:
    definition = resolve_definition(org_id, job_type, job_version)
    usage.check_cpu(org_id, definition.plan_cpu_quota)
    row = _request_row(
        org_id=org_id, user=user, definition=definition, params=params, secret_params=secret_params,
        job_priority=job_priority, job_group=job_group, user_key=user_key, scheduled_at=scheduled_at,
        parent=parent, cron_key=cron_key, triggered_by=triggered_by,
    )  # fmt: skip
    _insert([row])
    # a person's or a program's submission; the queen's and cron's own are not audited
    audit.record_change("JobRequest:Submit", row[0], summary=f"submitted {definition.job_type}")
    return row[0]


def requests_submit(
    *, org_id: int, user: Any, submissions: list[dict[str, Any]], triggered_by: str = ""
) -> list[JobRequest]:
    """Submit many requests at once, all or none: each submission holds ``request_submit``'s
    arguments (job_type, job_version, params, secret_params, job_priority, job_group, user_key,
    scheduled_at). A problem names the submission it is in (``requests[3].params: ...``).

    One query per distinct job type and version, INSERTs of the requests (one per 4 KiB of
    statement, about 25 requests) and one of their params, one wake-up for the queen: what a
    caller submitting a fan of requests needs.
    """
    if not submissions:
        raise ValidationError("requests: at least one request")
    if len(submissions) > MAX_SUBMIT_MANY:
        raise ValidationError(f"requests: at most {MAX_SUBMIT_MANY} requests at once")
    definitions: dict[tuple[str, str], SubmitDefinition] = {}
    rows = []
    for i, fields in enumerate(submissions):
        try:
            key = (str(fields.get("job_type", "")), str(fields.get("job_version", "")))
            if key not in definitions:
                definitions[key] = resolve_definition(org_id, *key)
            rows.append(_request_row(
                org_id=org_id, user=user, definition=definitions[key], params=fields.get("params"),
                secret_params=fields.get("secret_params"), job_priority=fields.get("job_priority", 0),
                job_group=fields.get("job_group", ""), user_key=fields.get("user_key", ""),
                scheduled_at=fields.get("scheduled_at"), triggered_by=triggered_by,
            ))  # fmt: skip
        except ValidationError as exc:
            raise ValidationError([f"requests[{i}].{m}" for m in exc.messages]) from exc
    usage.check_cpu(org_id, next(iter(definitions.values())).plan_cpu_quota)
    _insert(rows)
    created = [request for request, _ in rows]
    audit.record_change("JobRequest:Submit", object_type="JobRequest", object_id=created[0].pk,
                        organization_id=org_id, summary=f"submitted {len(created)} requests",
                        data={"ids": [r.pk for r in created[:100]]})  # fmt: skip
    return created


_Row = tuple[JobRequest, list[JobRequestParam]]
# the columns ``_request_row`` sets; every other one starts at its default
_REQUEST_COLUMNS = (
    "organization_id", "user_id", "job_definition_id", "job_type", "job_version", "job_priority", "job_group",
    "user_key", "scheduled_at", "parent_id", "cron_key", "cron_triggered", "triggered_by", "platform",
    "created_at", "updated_at",
)  # fmt: skip


def _request_row(
    *,
    org_id: int,
    user: Any,
    definition: "SubmitDefinition",
    params: dict[str, Any] | None,
    secret_params: set[str] | None,
    job_priority: int,
    job_group: str,
    user_key: str,
    scheduled_at: datetime | None,
    parent: JobRequest | None = None,
    cron_key: str | None = None,
    triggered_by: str = "",
) -> _Row:
    """A checked, unsaved request of ``definition`` and its param rows."""
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
    missing = [p for p in definition.required_params or [] if not values.get(p)]
    if missing:
        raise ValidationError(
            f"params: missing required params {', '.join(missing)} for job type {definition.job_type!r}"
        )
    request = JobRequest(
        organization_id=org_id,
        user=user if getattr(user, "pk", None) else None,
        job_definition=definition,
        job_type=definition.job_type,
        job_version=definition.sem_version or str(definition.version),
        platform=str(getattr(definition, "spec_platform", None) or "")[:100],
        job_priority=job_priority,
        job_group=job_group,
        user_key=user_key,
        scheduled_at=scheduled_at or timezone.now(),
        parent=parent,
        cron_key=cron_key,
        cron_triggered=cron_key is not None,
        triggered_by=triggered_by[:200],
    )
    secret_params = secret_params or set()
    rows = []
    for name, value in values.items():
        row = JobRequestParam(
            organization_id=org_id, job_request=request, name=name,
            secret=name in secret_params or is_secret_name(name),
        )  # fmt: skip
        if row.secret and (problem := short_secret_problem(value)):
            raise ValidationError(f"params.{name}: {problem}")
        row.set_value(value)
        rows.append(row)
    return request, rows


def _insert_requests(requests: list[JobRequest]) -> None:
    """Many checked requests in INSERTs of at most 4 KiB, written without the ORM's per-field
    preparation (a 200-request submit 28 -> 18 ms); the instances get their ids."""
    now = timezone.now()
    for request in requests:
        request.created_at = request.updated_at = now
    fastsql.insert_instances(JobRequest, _REQUEST_COLUMNS, requests)


_PARAM_COLUMNS = ("organization_id", "name", "value", "secret")


def _insert_together(row: _Row) -> bool:
    """A request and its params in one statement (no transaction round trips: a submit's row
    reaches the queen sooner); False when they do not fit one, and nothing was written."""
    request, params = row
    request.created_at = request.updated_at = timezone.now()
    return fastsql.insert_with_children(request, _REQUEST_COLUMNS, params, "job_request_id", _PARAM_COLUMNS)


def _insert(rows: list[_Row]) -> None:
    """Save checked requests and their params; one wake-up for the queen."""
    params = [param for _, request_params in rows for param in request_params]
    if len(rows) == 1 and params and fastsql.inserts_then() and _insert_together(rows[0]):
        events.request_submitted(rows[0][0])
        return
    # requests without params need no transaction here: one INSERT commits by itself, and
    # fastsql.insert_rows makes its own when it splits them
    with transaction.atomic() if params else nullcontext():
        if len(rows) == 1:
            rows[0][0].save(force_insert=True)
        else:
            _insert_requests([request for request, _ in rows])
        if params:
            JobRequestParam.objects.bulk_create(params)
        events.request_submitted(rows[-1][0])
