"""The one way tenant-owned rows are queried: always filtered by organization."""

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


class NoOrganization(Exception):
    """The caller belongs to no organization, so it may see nothing."""


def org_id_of(user: object) -> int:
    org_id = getattr(user, "organization_id", None)
    if not org_id:
        raise NoOrganization()
    return org_id


def scoped(queryset: QuerySet[M] | type[M], organization_id: int) -> QuerySet[M]:
    """Rows of ``queryset`` owned by ``organization_id``."""
    qs = queryset if isinstance(queryset, QuerySet) else queryset._default_manager.all()
    return qs.filter(organization_id=organization_id)


def for_user(queryset: QuerySet[M] | type[M], user: object) -> QuerySet[M]:
    """Rows the user's organization owns; none for a user without one."""
    qs = queryset if isinstance(queryset, QuerySet) else queryset._default_manager.all()
    org_id = getattr(user, "organization_id", None)
    if not org_id:
        return qs.none()
    return qs.filter(organization_id=org_id)
