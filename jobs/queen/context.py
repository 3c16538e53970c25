"""What a job's template sees: request params, job variables, configs, built-ins, task outputs."""

import time
from datetime import UTC, datetime
from typing import Any

from artifacts import services as artifact_services
from jobs.models import JobConfig, JobExecution, JobRequest, JobRequestParam
from orgs.models import OrgConfig


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


def secrets_and_values(
    request: JobRequest, params: list[JobRequestParam] | None = None
) -> tuple[dict[str, str], set[str]]:
    """Configs of the organization and job type, then request params (which win), decrypted,
    with the names whose values are secret."""
    values: dict[str, str] = {}
    secret: set[str] = set()
    rows: list[Any] = list(OrgConfig.objects.filter(organization_id=request.organization_id))
    rows += list(JobConfig.objects.filter(organization_id=request.organization_id, job_type=request.job_type))
    rows += params if params is not None else list(request.params.all())
    for row in rows:
        values[row.name] = row.plain_value()
        if row.secret:
            secret.add(row.name)
        else:
            secret.discard(row.name)
    return values, secret


def template_data(
    request: JobRequest,
    execution: JobExecution | None,
    values: dict[str, str],
    now: float | None = None,
) -> dict[str, Any]:
    """Outputs of earlier tasks, then configs and params, then built-ins (which nobody overrides)."""
    data: dict[str, Any] = {}
    if execution is not None:
        data.update({k: v for k, v in (execution.context or {}).items() if isinstance(k, str)})
        data.update(artifact_services.template_variables(request, execution))
    data.update(values)
    data.update(builtins(request, execution, now))
    return data
