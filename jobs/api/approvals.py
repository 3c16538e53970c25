"""REST API of manual approvals: ``POST /api/jobs/requests/{id}/review`` records one decision on a
MANUAL task waiting for approval (the reference's call); ``GET`` lists the request's reviews."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs import selectors
from jobs.models import ApprovalReview
from jobs.services import approvals


class ReviewInput(serializers.Serializer):
    execution_id = serializers.IntegerField()
    task_type = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(choices=approvals.STATUSES)
    comments = serializers.CharField(required=False, allow_blank=True, max_length=approvals.MAX_COMMENTS)


class ReviewSerializer(serializers.ModelSerializer):
    execution_id = serializers.IntegerField(source="job_execution_id")
    username = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalReview
        fields = ["id", "job_request_id", "execution_id", "task_type", "attempt", "username", "status", "comments",
                  "created_at"]  # fmt: skip

    def get_username(self, obj: ApprovalReview) -> str:
        return obj.username or "(queen)"


class RequestReview(OrgAPIView):
    required_permissions = {"GET": "JobRequest:Read", "POST": "JobRequest:Approve"}

    @extend_schema(responses=ReviewSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        job_request = selectors.request_get(self.org_id, pk)
        return Response(ReviewSerializer(approvals.request_reviews(job_request), many=True).data)

    @extend_schema(request=ReviewInput, responses=ReviewSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job_request = selectors.request_get(self.org_id, pk)
        if not isinstance(request.data, dict):
            raise ValidationError("expected a JSON object with execution_id, task_type, status and comments")
        data = ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            recorded = approvals.review(request=job_request, user=request.user, **data.validated_data)
        except approvals.ReviewConflict as exc:
            return Response({"error": "; ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return Response(ReviewSerializer(recorded).data, status=status.HTTP_201_CREATED)
