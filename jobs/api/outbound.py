"""REST API of what went out: webhook deliveries of a request, the metrics scrape and reports."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs import reports, selectors
from jobs.models import WebhookDelivery
from jobs.outbound import metrics
from orgs.authentication import BearerTokenAuthentication


class WebhookDeliverySerializer(serializers.ModelSerializer):
    task_type = serializers.CharField(source="task_execution.task_type", default="", read_only=True)
    ok = serializers.BooleanField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "job_request_id", "task_execution_id", "task_type", "url", "attempt", "status_code",
                  "ok", "error", "created_at"]  # fmt: skip


class RequestWebhooks(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        return self.paginate(
            request, selectors.webhook_deliveries(self.org_id, pk), WebhookDeliverySerializer
        )


class Reports(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read"}

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(
            reports.report(self.org_id, days=reports.days_param(request.query_params.get("days")))
        )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text for the whole installation: `Authorization: Bearer <FORMICARY_METRICS_TOKEN>`,
    or a staff user (session or API token)."""
    if not _may_scrape(request):
        return HttpResponse("metrics need Authorization: Bearer <FORMICARY_METRICS_TOKEN> or a staff user\n",
                            status=401, content_type="text/plain", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


def _may_scrape(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    token = settings.FORMICARY_METRICS_TOKEN
    if (
        token
        and header.startswith("Bearer ")
        and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    ):
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    try:
        found = BearerTokenAuthentication().authenticate(Request(request))
    except exceptions.AuthenticationFailed:  # a bad token is the same as none here: 401
        return False
    return found is not None and found[0].is_staff
