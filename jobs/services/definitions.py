"""Writes of job definitions and their configs."""

import hashlib
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from formicary_site.json_input import JSONInputError, loads
from jobs import selectors
from jobs.definition.errors import DefinitionError
from jobs.definition.parser import load_upload
from jobs.models import JobConfig, JobDefinition
from orgs import audit, crypto

MAX_DEFINITION_BYTES = 1024 * 1024
# A definition that names no max_concurrency may run this many requests at once.
DEFAULT_MAX_CONCURRENCY = 10


def definition_text_from_json(body: bytes) -> str:
    """A JSON upload becomes YAML text, the form every version is stored and served in."""
    try:
        data = loads(body)
    except JSONInputError as exc:
        raise ValidationError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ValidationError("a job definition must be a JSON object")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def definition_check(text: str) -> Any:
    """The parsed spec, or a ValidationError listing every problem (task, field, line)."""
    try:
        return load_upload(text)
    except DefinitionError as exc:
        raise ValidationError([str(p) for p in exc.problems] or [str(exc)]) from exc


def definition_upload(*, org_id: int, user: Any, text: str) -> tuple[JobDefinition, bool]:
    """Store ``text`` as the newest version of its job type. Returns (definition, created).

    Uploading the same text as the latest version returns that version unchanged.
    """
    if len(text.encode()) > MAX_DEFINITION_BYTES:
        raise ValidationError(f"definition is larger than {MAX_DEFINITION_BYTES} bytes")
    spec = definition_check(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    for _ in range(3):  # a concurrent upload of the same job type takes the version first: retry
        try:
            definition, created = _store_version(org_id, user, text, spec, digest)
        except IntegrityError:
            continue
        if created:
            audit.record_change("JobDefinition:Upload", definition, user=user,
                                summary=f"{definition.job_type} version {definition.version}")  # fmt: skip
        return definition, created
    raise ValidationError(f"job type {spec.job_type!r} is being uploaded concurrently; try again")


@transaction.atomic
def _store_version(org_id: int, user: Any, text: str, spec: Any, digest: str) -> tuple[JobDefinition, bool]:
    latest = (
        JobDefinition.objects.select_for_update()
        .filter(organization_id=org_id, job_type=spec.job_type, is_latest=True)
        .first()
    )
    if latest is not None and latest.deleted_at is None and latest.content_sha256 == digest:
        return latest, False
    last_version = (
        JobDefinition.objects.filter(organization_id=org_id, job_type=spec.job_type)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    ) or 0
    if latest is not None:
        JobDefinition.objects.filter(pk=latest.pk).update(is_latest=False)
    definition = JobDefinition.objects.create(
        organization_id=org_id,
        job_type=spec.job_type,
        version=last_version + 1,
        sem_version=spec.sem_version or "",
        description=spec.description or "",
        raw_yaml=text,
        spec=spec.to_dict(),
        content_sha256=digest,
        max_concurrency=spec.max_concurrency if spec.max_concurrency is not None else DEFAULT_MAX_CONCURRENCY,
        cron_trigger=spec.cron_trigger or "",
        public_plugin=bool(spec.public_plugin),
        tags=sorted({t for task in spec.tasks for t in (task.tags or [])} | set(spec.tags or [])),
        # disabling belongs to the job type: a new upload does not silently re-enable it
        disabled=bool(latest and latest.deleted_at is None and latest.disabled),
        created_by=user if getattr(user, "pk", None) else None,
    )
    return definition, True


def definition_set_disabled(*, definition: JobDefinition, disabled: bool) -> JobDefinition:
    JobDefinition.objects.filter(pk=definition.pk).update(disabled=disabled, updated_at=timezone.now())
    definition.refresh_from_db()
    action = "Pause" if disabled else "Enable"
    audit.record_change(
        f"JobDefinition:{action}", definition, summary=f"{action.lower()}d {definition.job_type}"
    )
    return definition


def definition_set_concurrency(*, definition: JobDefinition, max_concurrency: int) -> JobDefinition:
    if max_concurrency < 0:
        raise ValidationError("concurrency must be 0 or more")
    # applies to the job type, so the scheduler's check (on the latest version) sees it at once
    JobDefinition.objects.filter(
        organization_id=definition.organization_id, job_type=definition.job_type
    ).update(max_concurrency=max_concurrency, updated_at=timezone.now())
    definition.refresh_from_db()
    audit.record_change("JobDefinition:Update", definition, summary=f"{definition.job_type} concurrency "
                        f"{max_concurrency}", data={"max_concurrency": max_concurrency})  # fmt: skip
    return definition


def definition_delete(*, definition: JobDefinition) -> None:
    """Soft-delete the job type (all versions): requests that ran it keep their history."""
    JobDefinition.objects.filter(
        organization_id=definition.organization_id, job_type=definition.job_type, deleted_at__isnull=True
    ).update(deleted_at=timezone.now(), updated_at=timezone.now())
    audit.record_change("JobDefinition:Delete", definition, summary=f"deleted {definition.job_type}")


def job_config_save(
    *, org_id: int, job_type: str, name: str, value: str, secret: bool, config: JobConfig | None = None
) -> JobConfig:
    if not name or len(name) > 200:
        raise ValidationError("name: must be 1 to 200 characters")
    clash = selectors.job_configs(org_id, job_type).filter(name=name)
    if config is not None:
        clash = clash.exclude(pk=config.pk)
    if clash.exists():
        raise ValidationError(f"name: config {name!r} already exists for job type {job_type!r}")
    if secret and (problem := crypto.short_secret_problem(value)):
        raise ValidationError(f"value: {problem}")
    action = "Update" if config is not None else "Create"
    config = config or JobConfig(organization_id=org_id, job_type=job_type)
    config.name = name
    config.secret = secret
    config.set_value(value)
    config.save()
    audit.record_change(f"JobConfig:{action}", config, summary=f"{action.lower()}d {job_type} config {name}",
                        data={"job_type": job_type, "name": name, "secret": secret})  # fmt: skip
    return config


def job_config_delete(*, config: JobConfig) -> None:
    audit.record_change("JobConfig:Delete", config, summary=f"deleted {config.job_type} config {config.name}",
                        data={"job_type": config.job_type, "name": config.name})  # fmt: skip
    config.delete()
