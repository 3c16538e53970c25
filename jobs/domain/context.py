"""What a job's template sees: configs, request params, task outputs, built-ins (job and task
variables join when the definition is rendered: ``jobs.definition.layers`` has the order)."""

import json
import time
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import CharField, Exists, F, OuterRef, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from artifacts import services as artifact_services
from jobs import fastsql
from jobs.definition.layers import TemplateData
from jobs.models import JobConfig, JobExecution, JobRequest, JobRequestParam
from orgs import crypto
from orgs.models import OrgConfig, UserConfig


def builtins(request: JobRequest, execution: JobExecution | None, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, tz=UTC)
    started = execution.started_at.timestamp() if execution and execution.started_at else now
    return {
        "JobID": request.pk,
        "JobType": request.job_type,
        "JobVersion": request.job_version,
        "JobRetry": request.retried,
        "JobElapsedSecs": max(0, int(now - started)),
        "JobPriority": request.job_priority,
        "JobGroup": request.job_group,
        "UserKey": request.user_key,
        "UserID": request.user_id or "",
        "OrganizationID": request.organization_id,
        "DateYear": moment.year,
        "DateMonth": moment.month,
        "DateDay": moment.day,
        "YearDay": moment.timetuple().tm_yday,
        "FullDate": moment.strftime("%Y-%m-%d"),
        "EpochSecs": int(now),
    }


def secrets_and_values(request: JobRequest) -> tuple[dict[str, str], set[str]]:
    """Configs of the organization, of the submitting user, of the job type, then request params
    (each wins over the ones before), decrypted, with the names whose values are secret."""
    return secrets_and_values_many([request])[request.pk]


def template_data(
    request: JobRequest,
    execution: JobExecution | None,
    values: dict[str, str],
    now: float | None = None,
) -> dict[str, Any]:
    """Configs (organization, then job type), request params, outputs of earlier tasks (the job
    context), then built-ins (which nobody overrides); job and task variables join at rendering."""
    urls = artifact_services.template_variables(request, execution) if execution is not None else {}
    return template_data_of(request, execution, values, urls, now)


def _config_rows(
    org_ids: list[int], job_types: list[str], request_ids: list[int], user_ids: list[int]
) -> QuerySet[Any, tuple[Any, ...]]:
    """Organization configs (source 0), job configs (1), request params (2) and the submitting
    users' configs (3) in one UNION ALL: the four tables share their columns."""
    columns = ("src", "owner", "kind", "name", "value", "secret")
    orgs = OrgConfig.objects.filter(organization_id__in=org_ids).annotate(
        src=Value(0), owner=F("organization_id"), kind=Value("")
    )
    types = JobConfig.objects.filter(organization_id__in=org_ids, job_type__in=job_types).annotate(
        src=Value(1), owner=F("organization_id"), kind=F("job_type")
    )
    params = JobRequestParam.objects.filter(job_request_id__in=request_ids).annotate(
        src=Value(2), owner=F("job_request_id"), kind=Value("")
    )
    # kind: the organization, so that a batch of several organizations gives each request only
    # the configs its user keeps in the request's own organization
    users = UserConfig.objects.filter(user_id__in=user_ids, organization_id__in=org_ids).annotate(
        src=Value(3), owner=F("user_id"), kind=Cast("organization_id", CharField())
    )
    return (
        orgs.order_by().values_list(*columns)
        .union(types.order_by().values_list(*columns), params.order_by().values_list(*columns),
               users.order_by().values_list(*columns), all=True)
    )  # fmt: skip


def values_flags(request: str = "", *, params: bool = True) -> dict[str, Exists]:
    """Annotations of whether the request has configs or params for ``secrets_and_values``, the
    request reached by the lookup prefix ``request`` (e.g. ``"job_execution__job_request__"``;
    empty for a ``JobRequest`` query). Most have none: then the queen sends no query for them.
    ``params=False``: no ``has_params``, for a query that carries ``param_rows`` (which says it)."""
    org, user, job_type, pk = (
        OuterRef(request + c) for c in ("organization_id", "user_id", "job_type", "id")
    )
    flags = {
        "has_org_configs": Exists(OrgConfig.objects.filter(organization_id=org)),
        "has_user_configs": Exists(UserConfig.objects.filter(user_id=user, organization_id=org)),
        "has_job_configs": Exists(JobConfig.objects.filter(organization_id=org, job_type=job_type)),
    }
    if params:
        flags["has_params"] = Exists(JobRequestParam.objects.filter(job_request_id=pk))
    return flags


def param_rows() -> RawSQL:
    """An annotation for a query of requests (``jobs_jobrequest`` unaliased): the request's params
    as a JSON text of [name, value, secret] rows (NULL or "[]" when it has none). The scheduler's
    pick carries it, so a start whose request has params but no configs reads nothing more."""
    if connection.vendor == "postgresql":
        rows = "json_agg(json_build_array(p.name, p.value, p.secret))::text"
    else:
        rows = "json_group_array(json_array(p.name, p.value, p.secret))"
    sql = f'(SELECT {rows} FROM jobs_jobrequestparam p WHERE p.job_request_id = "jobs_jobrequest"."id")'
    return RawSQL(sql, (), output_field=TextField())


def _given_params(request: JobRequest) -> list[tuple[str, str, bool]] | None:
    """The params a query's ``param_rows`` brought with ``request``; None when it brought none."""
    if not hasattr(request, "param_rows"):
        return None
    return [(name, value, bool(secret)) for name, value, secret in json.loads(request.param_rows or "[]")]


def _configs_unknown(request: JobRequest) -> bool:
    flags = ("has_org_configs", "has_user_configs", "has_job_configs")
    return any(getattr(request, flag, True) for flag in flags)


# every start and dispatch of a templated job reads it: compiled once per shape
_CONFIG_ROWS = fastsql.ByShape(_config_rows, org_ids=int, job_types=str, request_ids=int, user_ids=int)


def secrets_and_values_many(requests: list[JobRequest]) -> dict[int, tuple[dict[str, str], set[str]]]:
    """``secrets_and_values`` of many requests in one query (``_config_rows``), or none when the
    requests came with their params (``param_rows``) and flags that say they have no configs."""
    if not requests:
        return {}
    found: dict[tuple[int, int, str], list[tuple[str, str, bool]]] = {}
    asked = []
    for request in requests:
        given = _given_params(request)
        if given is None:
            asked.append(request)
        elif given:
            found[(2, request.pk, "")] = given
    if asked or any(_configs_unknown(r) for r in requests):
        rows = _CONFIG_ROWS.rows(
            org_ids=sorted({r.organization_id for r in requests}),
            job_types=sorted({r.job_type for r in requests}),
            request_ids=[r.pk for r in asked] or [0],  # 0: no request has it
            user_ids=sorted({r.user_id for r in requests if r.user_id}) or [0],  # 0: no user has it
        )
        for src, owner, kind, name, value, secret in rows:
            found.setdefault((src, owner, kind), []).append((name, value, secret))
    out: dict[int, tuple[dict[str, str], set[str]]] = {}
    for request in requests:
        org = request.organization_id
        # a user's config wins over the organization's of the same name (together the base layer);
        # job variables rank between them and job configs: they need to know which is which
        user = found.get((3, request.user_id, str(org)), []) if request.user_id else []
        org_rows = [*found.get((0, org, ""), []), *user]
        later = [*found.get((1, org, request.job_type), []), *found.get((2, request.pk, ""), [])]
        values = TemplateData(org_config_names={r[0] for r in org_rows} - {r[0] for r in later})
        secret_names: set[str] = set()
        for name, value, secret in [*org_rows, *later]:
            values[name] = crypto.decrypt(value) if secret else value
            if secret:
                secret_names.add(name)
            else:
                secret_names.discard(name)
        out[request.pk] = values, secret_names
    return out


def template_data_of(
    request: JobRequest, execution: JobExecution | None, values: dict[str, str], artifact_urls: dict[str, str],
    now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``template_data`` with the artifact URLs already loaded (the dispatcher loads them for a
    whole batch). The order is the reference's (``jobs.definition.layers``): configs and params
    (as ``secrets_and_values`` merged them), then the artifact URLs and context of earlier tasks,
    then the built-ins."""
    context = {k: v for k, v in ((execution.context if execution is not None else {}) or {}).items()
               if isinstance(k, str)}  # fmt: skip
    fixed = builtins(request, execution, now)
    org_only: AbstractSet[str] = (
        getattr(values, "org_config_names", frozenset()) - artifact_urls.keys() - context.keys()
    )
    data = TemplateData(values, org_config_names=org_only, builtin_names=fixed.keys())
    data.update(artifact_urls)  # what earlier tasks left, like their context
    data.update(context)
    data.update(fixed)
    return data
