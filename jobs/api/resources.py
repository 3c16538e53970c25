"""REST API of job resources (the reference system's ``/api/jobs/resources``): named, counted
things tasks lease before they run (docs/resources.md). An organization sees and changes only
its own; another organization's resource is a 404."""

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs.api.parsers import ObjectBodyParser, known_fields
from jobs.api.resource_serializers import (
    ResourceConfigInput,
    ResourceConfigSerializer,
    ResourceInput,
    ResourceSerializer,
)
from jobs.services import resources as services

BODY = {"application/json": ResourceInput, "application/yaml": ResourceInput}
FILTERS = ("resource_type", "platform", "category", "external_id")
READ, WRITE = "JobResource:Read", "JobResource:Write"


def _input(request: Request, *, partial: bool) -> ResourceInput:
    data = ResourceInput(data=known_fields(request.data, ResourceInput().fields), partial=partial)
    data.is_valid(raise_exception=True)
    return data


class ResourceAPIView(OrgAPIView):
    parser_classes = [MultiPartParser, ObjectBodyParser]


class ResourceList(ResourceAPIView):
    required_permissions = {"GET": READ, "POST": WRITE}

    @extend_schema(
        responses=ResourceSerializer(many=True),
        parameters=[
            *(OpenApiParameter(name, str) for name in FILTERS),
            OpenApiParameter("description", str, description="contains, any case"),
            OpenApiParameter("disabled", bool), OpenApiParameter("page", int), OpenApiParameter("pageSize", int),
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        qs = services.resources_of(self.org_id)
        params = request.query_params
        for name in FILTERS:
            if params.get(name):
                qs = qs.filter(**{name: params[name]})
        if params.get("description"):
            qs = qs.filter(Q(description__icontains=params["description"]))
        if params.get("disabled") in ("true", "false"):
            qs = qs.filter(disabled=params["disabled"] == "true")
        return self.paginate(request, qs, ResourceSerializer)

    @extend_schema(request=BODY, responses={201: ResourceSerializer})
    def post(self, request: Request) -> Response:
        data = _input(request, partial=False)
        resource = services.resource_save(
            org_id=self.org_id, user_id=request.user.pk, fields=data.row_fields(), configs=data.config_rows()
        )
        return Response(ResourceSerializer(resource).data, status=status.HTTP_201_CREATED)


class ResourceDetail(ResourceAPIView):
    required_permissions = {"GET": READ, "PUT": WRITE, "DELETE": WRITE}

    @extend_schema(responses=ResourceSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ResourceSerializer(services.resource_get(self.org_id, pk)).data)

    @extend_schema(
        request=BODY, responses=ResourceSerializer, description="Change the fields the body names."
    )
    def put(self, request: Request, pk: int) -> Response:
        resource = services.resource_get(self.org_id, pk)
        data = _input(request, partial=True)
        resource = services.resource_save(
            org_id=self.org_id, user_id=request.user.pk, fields=data.row_fields(), configs=data.config_rows(),
            resource=resource,
        )  # fmt: skip
        return Response(ResourceSerializer(resource).data)

    @extend_schema(responses={200: None}, description="Refused (409) while the resource has live leases.")
    def delete(self, request: Request, pk: int) -> Response:
        services.resource_delete(resource=services.resource_get(self.org_id, pk))
        return Response(status=status.HTTP_200_OK)


class ResourceDisable(ResourceAPIView):
    required_permissions = {"POST": WRITE}
    disabled = True

    @extend_schema(request=None, responses={200: None}, description="No new leases; live ones run out.")
    def post(self, request: Request, pk: int) -> Response:
        services.resource_set_disabled(
            resource=services.resource_get(self.org_id, pk), disabled=self.disabled
        )
        return Response(status=status.HTTP_200_OK)


class ResourceEnable(ResourceDisable):
    disabled = False

    @extend_schema(request=None, responses={200: None}, description="Leased again.")
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)


class ResourceConfigAdd(ResourceAPIView):
    required_permissions = {"POST": WRITE}

    @extend_schema(request=ResourceConfigInput, responses=ResourceConfigSerializer,
                   description="Add a config, or replace the one of that name.")  # fmt: skip
    def post(self, request: Request, pk: int) -> Response:
        resource = services.resource_get(self.org_id, pk)
        data = ResourceConfigInput(data=known_fields(request.data, ResourceConfigInput().fields))
        data.is_valid(raise_exception=True)
        config = services.resource_config_save(resource=resource, **data.validated_data)
        return Response(ResourceConfigSerializer(config).data)


class ResourceConfigDelete(ResourceAPIView):
    required_permissions = {"DELETE": WRITE}

    @extend_schema(responses={200: None})
    def delete(self, request: Request, pk: int, config_id: int) -> Response:
        services.resource_config_delete(resource=services.resource_get(self.org_id, pk), config_id=config_id)
        return Response(status=status.HTTP_200_OK)
