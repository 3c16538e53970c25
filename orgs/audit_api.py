"""GET /api/audits: the audit records of the caller's organization (every one for a superuser)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from orgs.api_serializers import AuditRecordSerializer
from orgs.audit_filters import AuditFilterError, filter_records


class AuditList(OrgAPIView):
    allow_without_org = True  # a superuser without an organization sees every record
    required_permissions = {"GET": "Audit:Read"}

    @extend_schema(
        responses=AuditRecordSerializer(many=True),
        parameters=[
            OpenApiParameter(
                "kind", str, description="an action (`JobRequest:Cancel`) or its resource (`JobRequest`)"
            ),
            OpenApiParameter("user", str, description="a username or user id"),
            OpenApiParameter("object_type", str),
            OpenApiParameter("object_id", str),
            OpenApiParameter("from", str, description="ISO date or date-time, inclusive"),
            OpenApiParameter("to", str, description="ISO date (the whole day) or date-time, inclusive"),
            OpenApiParameter("organization_id", int, description="superusers only"),
        ],
        description="Who changed what, when and from where; newest first. Needs Audit:Read.",
    )
    def get(self, request: Request) -> Response:
        try:
            qs = filter_records(request.user, request.query_params)
        except AuditFilterError as exc:
            raise ValidationError({exc.field: exc.message}) from None
        return self.paginate(request, qs, AuditRecordSerializer)
