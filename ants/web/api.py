"""REST API of ants and their containers (the reference system's ``/api/ants`` and
``/api/executors``).

Containers are not asked for on demand: every ant heartbeat carries the ant's running
containers (``AntRegistration.containers``), the queen persists them on the ant's row, and GET
reads the database. DELETE sends a TERMINATE_CONTAINER request to the container's ant on its
control stream and answers 202; the ant kills the container (its task then ends like a
cancelled one) and the container leaves the list with the next heartbeats. The API never
reads the queens' response stream (the ant's reply goes there and the queens ignore it).
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ants.containers import terminate_request
from ants.web import selectors
from ants.web.serializers import AntSerializer, ContainerSerializer, TerminateAccepted
from formicary_site.api import OrgAPIView, new_paginator
from jobs.domain.messaging import get_transport

PAGE_PARAMS = [OpenApiParameter("page", int), OpenApiParameter("pageSize", int)]


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    low = raw.strip().lower()
    if low not in ("true", "false", "1", "0", "yes", "no"):
        raise ValidationError({name: f"expected true or false, not {raw!r}"})
    return low in ("true", "1", "yes")


class _Rows(list):  # type: ignore[type-arg]
    """A list the paginator can count like a queryset."""

    def count(self) -> int:  # type: ignore[override]
        return len(self)


class AntAPIView(OrgAPIView):
    required_permissions = {"GET": "Ant:Read"}

    @property
    def superuser(self) -> bool:
        return bool(self.request.user.is_superuser)

    def serializer_context(self, ants: list[Any]) -> dict[str, Any]:
        visible = None if self.superuser else selectors.visible_request_ids(org_id=self.org_id, ants=ants)
        return {"request": self.request, "visible_request_ids": visible}


class AntList(AntAPIView):
    @extend_schema(
        responses=AntSerializer(many=True),
        parameters=[
            OpenApiParameter("alive", bool), OpenApiParameter("method", str),
            OpenApiParameter("tag", str), *PAGE_PARAMS,
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        """Registered ants (shared ones and those dedicated to the caller's organization)."""
        qs = selectors.ants_for(org_id=self.org_id, superuser=self.superuser)
        if (alive := _bool_param(request, "alive")) is not None:
            qs = qs.filter(alive=alive)
        rows = list(qs)
        method = request.query_params.get("method", "").strip().upper()
        tag = request.query_params.get("tag", "").strip()
        # tags/methods are JSON lists: filtered here, portable across SQLite and PostgreSQL
        rows = [a for a in rows if (not method or method in a.methods) and (not tag or tag in a.tags)]
        paginator = new_paginator()
        page = paginator.paginate_queryset(_Rows(rows), request, view=self)
        data = AntSerializer(page, many=True, context=self.serializer_context(page)).data
        return paginator.get_paginated_response(data)


class AntDetail(AntAPIView):
    @extend_schema(responses=AntSerializer)
    def get(self, request: Request, key: str) -> Response:
        """One ant by its ant id (or row id)."""
        ant = selectors.ant_get(org_id=self.org_id, key=key, superuser=self.superuser)
        if ant is None:
            raise NotFound("no such ant")
        return Response(AntSerializer(ant, context=self.serializer_context([ant])).data)


class ExecutorList(OrgAPIView):
    required_permissions = {"GET": "Ant:Read"}

    @extend_schema(
        responses=ContainerSerializer(many=True),
        parameters=[
            OpenApiParameter("ant_id", str), OpenApiParameter("method", str),
            OpenApiParameter("job_request_id", str), OpenApiParameter("task_type", str), *PAGE_PARAMS,
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        """Running containers of the caller's organization, by ant (as of the last heartbeats)."""
        rows = selectors.containers_for(org_id=self.org_id)
        params = request.query_params
        for name in ("ant_id", "method", "job_request_id", "task_type"):
            if params.get(name):
                want = params[name].strip()
                want = want.upper() if name == "method" else want
                rows = [c for c in rows if str(c.get(name, "")) == want]
        paginator = new_paginator()
        page = paginator.paginate_queryset(_Rows(rows), request, view=self)
        return paginator.get_paginated_response(ContainerSerializer(page, many=True).data)


class ExecutorDetail(OrgAPIView):
    required_permissions = {"GET": "Ant:Read", "DELETE": "Ant:Write"}

    def container(self, container_id: str) -> dict[str, Any]:
        found = selectors.container_get(org_id=self.org_id, container_id=container_id)
        if found is None:
            raise NotFound("no such running container")
        return found

    @extend_schema(responses=ContainerSerializer)
    def get(self, request: Request, container_id: str) -> Response:
        return Response(ContainerSerializer(self.container(container_id)).data)

    @extend_schema(responses={202: TerminateAccepted})
    def delete(self, request: Request, container_id: str) -> Response:
        """Ask the container's ant to kill it; 202: the request is on its way to the ant."""
        found = self.container(container_id)
        req = terminate_request(found, organization_id=str(self.org_id), user_id=str(request.user.pk))
        get_transport().send_task(found["ant_id"], req)
        body = {"id": found["id"], "ant_id": found["ant_id"], "status": "TERMINATE_REQUESTED"}
        return Response(body, status=status.HTTP_202_ACCEPTED)
