"""REST API of error-code rules (the reference system's ``/api/errors``): an organization sees its
own rules and the global ones and changes only its own; global rules are changed by superusers."""

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs.api.error_serializers import ErrorCodeInput, ErrorCodeSerializer
from jobs.api.parsers import ObjectBodyParser, known_fields
from jobs.services import error_codes as services

BODY = {"application/json": ErrorCodeInput, "application/yaml": ErrorCodeInput}
FILTERS = ("error_code", "job_type", "task_type_scope", "platform_scope", "command_scope", "action")


def _input(request: Request, *, partial: bool) -> ErrorCodeInput:
    data = ErrorCodeInput(data=known_fields(request.data, ErrorCodeInput().fields), partial=partial)
    data.is_valid(raise_exception=True)
    return data


class ErrorCodeAPIView(OrgAPIView):
    parser_classes = [MultiPartParser, ObjectBodyParser]

    @property
    def superuser(self) -> bool:
        return bool(self.request.user.is_superuser)

    def _update(self, request: Request, pk: int) -> Response:
        row = services.error_code_get(self.org_id, pk)
        data = _input(request, partial=True)
        row = services.error_code_save(
            org_id=self.org_id, superuser=self.superuser, fields=data.row_fields(), row=row
        )
        return Response(ErrorCodeSerializer(row).data)


class ErrorCodeList(ErrorCodeAPIView):
    required_permissions = {"GET": "ErrorCode:Read", "POST": "ErrorCode:Write", "PUT": "ErrorCode:Write"}

    @extend_schema(
        responses=ErrorCodeSerializer(many=True),
        parameters=[
            *(OpenApiParameter(name, str) for name in FILTERS),
            OpenApiParameter("q", str, description="search code, regex, description and messages"),
            OpenApiParameter("page", int), OpenApiParameter("pageSize", int),
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        qs = services.error_codes_visible(self.org_id)
        params = request.query_params
        for name in FILTERS:
            if params.get(name):
                value = params[name].upper() if name == "action" else params[name]
                qs = qs.filter(**{name: value})
        if params.get("q"):
            q = params["q"]
            qs = qs.filter(
                Q(error_code__icontains=q) | Q(regex__icontains=q) | Q(description__icontains=q)
                | Q(display_message__icontains=q) | Q(display_code__icontains=q)
            )  # fmt: skip
        return self.paginate(request, qs.order_by("error_code", "id"), ErrorCodeSerializer)

    @extend_schema(
        request=BODY,
        responses={201: ErrorCodeSerializer, 200: ErrorCodeSerializer},
        description="A new rule of the caller's organization (`is_global: true`: for every organization, "
        "superusers only). With an `id`, that rule is updated (200), as in the reference.",
    )
    def post(self, request: Request) -> Response:
        data = _input(request, partial=False)
        if data.validated_data.get("id"):
            return self._update(request, data.validated_data["id"])
        row = services.error_code_save(
            org_id=self.org_id, superuser=self.superuser, fields=data.row_fields(),
            make_global=data.validated_data["is_global"],
        )  # fmt: skip
        return Response(ErrorCodeSerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=BODY,
        responses=ErrorCodeSerializer,
        operation_id="errors_update_by_body",
        description="Update the rule the body's `id` names.",
    )
    def put(self, request: Request) -> Response:
        data = _input(request, partial=True)
        if not data.validated_data.get("id"):
            raise ValidationError({"id": "required: the error code to update"})
        return self._update(request, data.validated_data["id"])


class ErrorCodeDetail(ErrorCodeAPIView):
    required_permissions = {"GET": "ErrorCode:Read", "PUT": "ErrorCode:Write", "DELETE": "ErrorCode:Write"}

    @extend_schema(responses=ErrorCodeSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ErrorCodeSerializer(services.error_code_get(self.org_id, pk)).data)

    @extend_schema(request=BODY, responses=ErrorCodeSerializer)
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk)

    @extend_schema(responses={200: None})
    def delete(self, request: Request, pk: int) -> Response:
        row = services.error_code_get(self.org_id, pk)
        services.error_code_delete(row=row, org_id=self.org_id, superuser=self.superuser)
        return Response(status=status.HTTP_200_OK)
