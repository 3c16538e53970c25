"""Reads of the queen's ant records for the API: what a caller may see of ants and containers.

Ants are shared by every organization, so an ant row itself is visible to all members, except
an ant dedicated to another organization. What ants carry for others is not: allocations are
cut down to the caller's own job requests, and containers (from heartbeats, labelled with their
organization) are listed for the caller's organization only.
"""

from typing import Any

from django.db.models import Q, QuerySet

from ants.models import AntRegistration
from jobs import selectors as job_selectors


def ants_for(*, org_id: int, superuser: bool = False) -> QuerySet[AntRegistration]:
    """Shared ants and the caller's dedicated ones (superusers: every ant)."""
    qs = AntRegistration.objects.all()
    if superuser:
        return qs
    return qs.filter(Q(organization_id="") | Q(organization_id=str(org_id)))


def ant_get(*, org_id: int, key: str, superuser: bool = False) -> AntRegistration | None:
    """An ant by its ant id (or its row id when ``key`` is a number and no ant has that id)."""
    qs = ants_for(org_id=org_id, superuser=superuser)
    ant = qs.filter(ant_id=key).first()
    if ant is None and key.isascii() and key.isdigit():
        ant = qs.filter(pk=int(key)).first()
    return ant


def visible_request_ids(*, org_id: int, ants: list[AntRegistration]) -> set[str]:
    """The job request ids in the ants' allocations that belong to ``org_id`` (one query)."""
    ids = {int(k) for ant in ants for k in (ant.allocations or {}) if str(k).isascii() and str(k).isdigit()}
    if not ids:
        return set()
    owned = job_selectors.requests_for(org_id).filter(id__in=ids).values_list("id", flat=True)
    return {str(i) for i in owned}


def containers_for(*, org_id: int) -> list[dict[str, Any]]:
    """Running containers of live ants labelled with ``org_id``, newest first, each with its ant."""
    out = []
    for ant_id, containers in AntRegistration.objects.filter(alive=True).values_list("ant_id", "containers"):
        for c in containers or []:
            if isinstance(c, dict) and c.get("id") and str(c.get("organization_id", "")) == str(org_id):
                out.append({**c, "ant_id": ant_id})
    out.sort(key=lambda c: (-(c.get("started_at") or 0), c["ant_id"], str(c["id"])))
    return out


def container_get(*, org_id: int, container_id: str) -> dict[str, Any] | None:
    """One of the organization's containers by id (a Docker id prefix of 12+ characters works)."""
    for c in containers_for(org_id=org_id):
        cid = str(c["id"])
        if cid == container_id or (len(container_id) >= 12 and container_id.startswith(cid)):
            return c
    return None
