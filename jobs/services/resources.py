"""Reads and writes of job resources (``JobResource`` and its configs) for one organization;
another organization's resource is not found. Leasing lives in jobs/queen/leases.py."""

from typing import Any

from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from rest_framework.exceptions import APIException

from jobs.models import JobResource, JobResourceConfig, JobResourceUse
from orgs.services import config_save


class ResourceInUse(APIException):
    status_code = 409
    default_code = "conflict"


def _live_uses() -> Prefetch:
    return Prefetch(
        "uses",
        queryset=JobResourceUse.objects.filter(active=True).select_related("task_execution").order_by("id"),
        to_attr="live_uses",
    )


def resources_of(org_id: int) -> QuerySet[JobResource]:
    """The organization's resources with their configs and live leases."""
    return (
        JobResource.objects.filter(organization_id=org_id)
        .prefetch_related("configs", _live_uses())
        .order_by("resource_type", "id")
    )


def resource_get(org_id: int, pk: int) -> JobResource:
    found = resources_of(org_id).filter(pk=pk).first()
    if found is None:
        raise Http404("no such job resource")
    return found


@transaction.atomic
def resource_save(
    *, org_id: int, user_id: int | None, fields: dict[str, Any], configs: list[dict[str, Any]],
    resource: JobResource | None = None,
) -> JobResource:  # fmt: skip
    """Create or update a resource; ``configs`` (name, value, secret) are added or replaced by
    name, the others kept."""
    if resource is None:
        resource = JobResource(organization_id=org_id, user_id=user_id)
    for name, value in fields.items():
        setattr(resource, name, value)
    resource.save()
    for config in configs:
        resource_config_save(resource=resource, **config)
    return resource_get(org_id, resource.pk)


def resource_config_save(
    *, resource: JobResource, name: str, value: str, secret: bool = False
) -> JobResourceConfig:
    config = JobResourceConfig.objects.filter(job_resource=resource, name=name).first()
    return config_save(
        config or JobResourceConfig(job_resource=resource), name=name, value=value, secret=secret
    )


def resource_config_delete(*, resource: JobResource, config_id: int) -> None:
    if JobResourceConfig.objects.filter(job_resource=resource, pk=config_id).delete()[0] == 0:
        raise Http404("no such config of this job resource")


def resource_set_disabled(*, resource: JobResource, disabled: bool) -> None:
    """A disabled resource is leased no more; leases it has run out as usual."""
    JobResource.objects.filter(pk=resource.pk).update(disabled=disabled)


def resource_delete(*, resource: JobResource) -> None:
    live = JobResourceUse.objects.filter(job_resource=resource, active=True).count()
    if live:
        raise ResourceInUse(f"the resource has {live} live lease(s): disable it and delete it when they end")
    resource.delete()
