"""REST API of artifacts (the reference system's paths): list and query, upload, metadata,
streaming download, delete. Every call is scoped to the caller's organization; a download also
works without a token through a short-lived signed link (``?sig=``), as in ``download_url`` and
the ``<task>_ArtifactURL_<n>`` template variables."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core import signing
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import (
    AuthenticationFailed,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response

from ants.artifact_store import CHUNK
from artifacts import selectors, services, storage
from artifacts.models import Artifact
from formicary_site.api import OrgAPIView
from formicary_site.parsers import MultiPartParser
from jobs.api.parsers import RawBodyParser
from orgs.permissions import require

KINDS = {k.value for k in Artifact.Kind}


class ArtifactSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    job_request_id = serializers.IntegerField(read_only=True, allow_null=True)
    job_execution_id = serializers.IntegerField(read_only=True, allow_null=True)
    task_execution_id = serializers.IntegerField(read_only=True, allow_null=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = [
            "id", "name", "kind", "group", "organization_id", "job_request_id", "job_execution_id",
            "task_execution_id", "job_type", "task_type", "user_id", "size", "sha256", "content_type",
            "metadata", "expires_at", "created_at", "download_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_download_url(self, obj: Artifact) -> str:
        """A signed link that works without a token until it expires."""
        return services.signed_download_url(obj)


class UploadInput(serializers.Serializer):
    name = serializers.CharField(max_length=500, required=False)
    job_request_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    task_type = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    content_type = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    expires_after = serializers.FloatField(
        required=False, allow_null=True, min_value=0, max_value=services.MAX_EXPIRES_AFTER_SECS
    )


def _is_multipart(request: Request) -> bool:
    return (request.content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def _announced_size(request: Request) -> int:
    """The upload's size as the client announced it (the storage quota refuses it early)."""
    if _is_multipart(request):
        upload = request.FILES.get("file")
        return int(upload.size or 0) if upload is not None else 0
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class ArtifactListCreate(OrgAPIView):
    required_permissions = {"GET": "Artifact:Read", "POST": "Artifact:Write"}
    parser_classes = [MultiPartParser, RawBodyParser]

    @extend_schema(
        responses=ArtifactSerializer(many=True),
        parameters=[
            OpenApiParameter("name", str), OpenApiParameter("task_type", str), OpenApiParameter("job_type", str),
            OpenApiParameter("job_request_id", int), OpenApiParameter("kind", str, enum=sorted(KINDS)),
            OpenApiParameter("page", int), OpenApiParameter("pageSize", int),
        ],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        qs = selectors.artifacts_for(self.org_id)
        params = request.query_params
        for name in ("name", "task_type", "job_type", "sha256"):
            if params.get(name):
                qs = qs.filter(**{name: params[name]})
        # ``job_id`` is the reference guides' name for it
        if params.get("job_request_id") or params.get("job_id"):
            name = "job_request_id" if params.get("job_request_id") else "job_id"
            raw = params[name]
            if not (raw.isascii() and raw.isdigit()):
                raise ValidationError({name: f"must be a whole number, got {raw!r}"})
            qs = qs.filter(job_request_id=int(raw))
        if params.get("kind"):
            kind = params["kind"].upper()
            if kind not in KINDS:
                raise ValidationError(
                    {"kind": f"unknown kind {params['kind']!r} (one of {', '.join(sorted(KINDS))})"}
                )
            qs = qs.filter(kind=kind)
        return self.paginate(request, qs.order_by("-id"), ArtifactSerializer)

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
                 "application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[OpenApiParameter("name", str), OpenApiParameter("job_request_id", int),
                    OpenApiParameter("task_type", str), OpenApiParameter("expires_after", float)],
        responses={201: ArtifactSerializer},
        description="Upload a file: multipart (field `file`, other fields as form fields) or the raw body "
        "(fields as query parameters; `name` required). Streams to the store; never held in memory.",
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        if _is_multipart(request):
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationError({"file": "a multipart upload needs a 'file' field"})
            fields: dict[str, Any] = {k: v for k, v in request.POST.items() if k != "file"}
            fields.setdefault("name", upload.name)
            fields.setdefault("content_type", upload.content_type or "")
            chunks: Iterator[bytes] = upload.chunks(CHUNK)
        else:
            fields = dict(request.query_params.items())
            if not fields.get("name"):
                raise ValidationError({"name": "required (a query parameter for a raw-body upload)"})
            fields.setdefault("content_type", (request.content_type or "").split(";")[0].strip())
            chunks = self._body_chunks(request, fields)
        data = UploadInput(data=fields)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if not v.get("name"):
            raise ValidationError({"name": "must not be empty"})
        # refused before a byte reaches the store
        services.check_upload(org_id=self.org_id, name=v["name"], job_request_id=v.get("job_request_id"),
                              size=_announced_size(request))  # fmt: skip
        artifact = services.artifact_upload(
            org_id=self.org_id, user=request.user, name=v["name"], chunks=chunks,
            job_request_id=v.get("job_request_id"), task_type=v["task_type"], content_type=v["content_type"],
            expires_after=v.get("expires_after"),
        )  # fmt: skip
        return Response(ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _body_chunks(request: Request, fields: dict[str, Any]) -> Iterator[bytes]:
        raw = request._request  # the Django request: read the body as a stream, never whole
        while chunk := raw.read(CHUNK):
            yield chunk


class ArtifactDetail(OrgAPIView):
    required_permissions = {"GET": "Artifact:Read", "DELETE": "Artifact:Write"}

    @extend_schema(responses=ArtifactSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ArtifactSerializer(selectors.artifact_get(self.org_id, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.artifact_delete(artifact=selectors.artifact_get(self.org_id, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The store's chunks one at a time from a worker thread (Django's ASGI handler would read a
    synchronous iterator whole into memory first)."""
    done = object()
    try:
        # asgiref's types keep one overload of next(), the one without a default
        while (chunk := await sync_to_async(next, thread_sensitive=False)(chunks, done)) is not done:  # type: ignore[call-arg]
            yield chunk  # type: ignore[misc]
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


class ArtifactDownload(OrgAPIView):
    """The token (or session) of a member of the artifact's organization, or a valid ``sig``."""

    required_permissions = {"GET": "Artifact:Read"}

    permission_classes: list = []

    @extend_schema(
        parameters=[OpenApiParameter("sig", str, description="signed link token (instead of a token)")],
        responses={(200, "application/octet-stream"): bytes},
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        sig = request.query_params.get("sig")
        if sig:
            try:
                if services.token_artifact_id(sig) != pk:
                    raise PermissionDenied("this download link is for another artifact")
            except signing.SignatureExpired:
                raise PermissionDenied("the download link has expired") from None
            except signing.BadSignature:
                raise PermissionDenied("invalid download link signature") from None
            artifact = Artifact.objects.get(pk=pk)
        else:
            user = request.user
            if not user or not user.is_authenticated:
                raise NotAuthenticated("a token or a signed link (?sig=) is required")
            if not (org_id := getattr(user, "organization_id", None)):
                raise AuthenticationFailed("you must belong to an organization")
            require(request, self.required_permissions["GET"])  # a narrower token may lack it
            artifact = selectors.artifact_get(org_id, pk)
        chunks = storage.iter_chunks(artifact.storage_key)
        content: Any = _async_chunks(chunks) if isinstance(request._request, ASGIRequest) else chunks
        response = StreamingHttpResponse(content, content_type=artifact.content_type)
        response["Content-Length"] = str(artifact.size)
        response["Content-Disposition"] = (
            content_disposition_header(True, artifact.name.rsplit("/", 1)[-1]) or ""
        )
        if artifact.sha256:
            response["X-Checksum-Sha256"] = artifact.sha256
        return response


class ArtifactDownloadBySha256(ArtifactDownload):
    """The reference's download by checksum: the newest of the caller's artifacts with it."""

    @extend_schema(
        responses={(200, "application/octet-stream"): bytes}, operation_id="artifacts_download_by_sha256"
    )
    def get(self, request: Request, sha256: str) -> StreamingHttpResponse:  # type: ignore[override]
        user = request.user
        if not user or not user.is_authenticated:
            raise NotAuthenticated("a token is required to download by checksum")
        if not (org_id := getattr(user, "organization_id", None)):
            raise AuthenticationFailed("you must belong to an organization")
        found = selectors.artifacts_for(org_id).filter(sha256=sha256.lower()).order_by("-id")
        pk = found.values_list("pk", flat=True).first()
        if pk is None:
            raise NotFound("no artifact with this sha256")
        return super().get(request, pk)
