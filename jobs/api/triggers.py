"""REST API of triggers: the webhook and GitHub receivers (no user session: the trigger's secret
authorizes) and the state of a definition's triggers with its reset (docs/triggers.md)."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from formicary_site.api import OrgAPIView
from jobs import selectors
from jobs.definition.triggers import MAX_BODY_BYTES
from jobs.triggers import selectors as trigger_selectors
from jobs.triggers import services
from jobs.triggers.services import FireResult, TriggerAmbiguous, TriggerNotFound, TriggerUnauthorized

# what the Swagger page names as the receivers' permission: no user, the trigger's secret
SIGNED_BY_SECRET = "none: the trigger's secret (a signature, token or key) authorizes the call"
ORG_PARAM = OpenApiParameter(
    "org", str, description="organization name; needed only when two organizations accept the same secret"
)


def _error(code: int, message: str) -> Response:
    return Response({"detail": message}, status=code)


def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over 1 MiB (read no further than that)."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = request.stream.read(MAX_BODY_BYTES + 1) if request.stream is not None else b""
    return None if len(body) > MAX_BODY_BYTES else body


def _fired(result: FireResult) -> Response:
    if result.outcome == "fired":
        return Response({"request_id": result.request_id}, status=status.HTTP_201_CREATED)
    if result.outcome in ("duplicate", "seen"):
        return Response({"duplicate": True, "request_id": result.request_id}, status=status.HTTP_200_OK)
    if result.outcome in ("filtered", "rate_limited"):
        return Response({"filtered": True, "reason": result.reason}, status=status.HTTP_202_ACCEPTED)
    return _error(status.HTTP_422_UNPROCESSABLE_ENTITY, result.reason)


class _Receiver(APIView):
    """Called by other systems: no session, no CSRF; the trigger's secret is the authorization."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    required_permissions = {"POST": SIGNED_BY_SECRET}

    def receive(self, request: Request, call: Any) -> Response:
        body = _read_body(request)
        if body is None:
            return _error(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes"
            )
        try:
            return call(body)
        except TriggerNotFound as exc:
            return _error(status.HTTP_404_NOT_FOUND, str(exc))
        except TriggerUnauthorized as exc:
            return _error(status.HTTP_401_UNAUTHORIZED, str(exc))
        except TriggerAmbiguous as exc:
            return _error(status.HTTP_409_CONFLICT, str(exc))


_RECEIVER_RESPONSES = {
    201: OpenApiResponse(description='a request started: {"request_id": N}'),
    200: OpenApiResponse(
        description='a duplicate (dedup_key fired before): {"duplicate": true, "request_id": N}'
    ),
    202: OpenApiResponse(description='filtered or over the rate limit: {"filtered": true, "reason": "..."}'),
    401: OpenApiResponse(description="missing or wrong signature, token or key: nothing is created"),
    404: OpenApiResponse(description="no such trigger"),
    413: OpenApiResponse(description="body over 1 MiB"),
    422: OpenApiResponse(description="the request could not be submitted (e.g. a required param is missing)"),
}


class WebhookTrigger(_Receiver):
    @extend_schema(request=None, parameters=[ORG_PARAM], responses=_RECEIVER_RESPONSES)
    def post(self, request: Request, job_type: str, name: str) -> Response:
        return self.receive(
            request,
            lambda body: _fired(
                services.webhook_receive(
                    job_type=job_type,
                    name=name,
                    org_name=request.query_params.get("org", ""),
                    body=body,
                    headers=dict(request.headers),
                    query=request.query_params.dict(),
                )  # fmt: skip
            ),
        )


class GithubWebhook(_Receiver):
    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("job_type", str, required=True), ORG_PARAM],
        responses={
            **_RECEIVER_RESPONSES,
            200: OpenApiResponse(
                description='ping: {"message": "pong..."}; a redelivery: {"duplicate": true}'
            ),
            202: OpenApiResponse(description='an event other than push: {"ignored": "why"}'),
        },
    )
    def post(self, request: Request) -> Response:
        job_type = request.query_params.get("job_type", "")
        if not job_type:
            return _error(status.HTTP_400_BAD_REQUEST, "job_type: required query parameter")

        def call(body: bytes) -> Response:
            result = services.github_receive(
                job_type=job_type, org_name=request.query_params.get("org", ""), body=body,
                headers=dict(request.headers),
            )  # fmt: skip
            if result.status == "pong":
                return Response({"message": result.message})
            if result.status == "ignored":
                return Response({"ignored": result.message}, status=status.HTTP_202_ACCEPTED)
            assert result.fired is not None
            return _fired(result.fired)

        return self.receive(request, call)


# ---------------------------------------------------------------- state


class FiringSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    outcome = serializers.CharField()
    reason = serializers.CharField()
    event_key = serializers.CharField()
    dedup_key = serializers.CharField()
    request_id = serializers.IntegerField(source="job_request_id", allow_null=True)
    created_at = serializers.DateTimeField()


class TriggerStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    url = serializers.CharField(allow_null=True)
    cursor = serializers.CharField()
    window_start = serializers.DateTimeField(allow_null=True)
    window_count = serializers.IntegerField()
    rate_limit = serializers.DictField(allow_null=True)
    last_polled_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    firings = FiringSerializer(many=True)


def _state_or_404(org_id: int, key: str, name: str) -> dict[str, Any]:
    definition = selectors.definition_get(org_id, key)
    found = trigger_selectors.trigger_overview(definition, name)
    if found is None:
        raise NotFound(f"job type {definition.job_type!r} has no trigger {name!r}")
    return found


class TriggerList(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(responses=TriggerStateSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        definition = selectors.definition_get(self.org_id, key)
        return Response(
            TriggerStateSerializer(trigger_selectors.triggers_overview(definition), many=True).data
        )


class TriggerStateView(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read", "POST": "JobDefinition:Write"}

    @extend_schema(responses=TriggerStateSerializer)
    def get(self, request: Request, key: str, name: str) -> Response:
        return Response(TriggerStateSerializer(_state_or_404(self.org_id, key, name)).data)

    @extend_schema(
        request=None, responses=TriggerStateSerializer, description="clears the cursor and the rate window"
    )
    def post(self, request: Request, key: str, name: str) -> Response:
        found = _state_or_404(self.org_id, key, name)
        if found["state"] is not None:
            services.trigger_reset(state=found["state"])
        return Response(TriggerStateSerializer(_state_or_404(self.org_id, key, name)).data)


class TriggerReset(OrgAPIView):
    required_permissions = {"POST": "JobDefinition:Write"}
    post = TriggerStateView.post
