"""REST API of job definitions and their configs (the reference system's paths)."""

import subprocess
from typing import Any

from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs import selectors
from jobs.api.parsers import ObjectBodyParser, RawBodyParser, is_yaml, known_fields, looks_like_json
from jobs.api.serializers import (
    ConcurrencyInput,
    DefinitionVersionSerializer,
    JobConfigInput,
    JobConfigSerializer,
    JobDefinitionSerializer,
)
from jobs.definition.dot import to_dot
from jobs.definition.lint import shell_warnings
from jobs.domain.specs import graph_spec
from jobs.services import definitions as services
from orgs.crypto import REDACTED


def _bool(raw: str, name: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValidationError({name: f"must be true or false, got {raw!r}"})


def _is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


class DefinitionListCreate(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read", "POST": "JobDefinition:Write"}
    parser_classes = [RawBodyParser]

    @extend_schema(
        responses=JobDefinitionSerializer(many=True),
        parameters=[
            OpenApiParameter("job_type", str),
            OpenApiParameter("platform", str),
            OpenApiParameter("q", str, description="search job_type and description"),
            OpenApiParameter("public_plugin", bool),
            OpenApiParameter("disabled", bool),
            OpenApiParameter("tags", str, description="comma-separated; definitions with any of them"),
            OpenApiParameter("page", int),
            OpenApiParameter("pageSize", int),
        ],
    )
    def get(self, request: Request) -> Response:
        qs = selectors.definitions_live(self.org_id).filter(is_latest=True).order_by("job_type")
        params = request.query_params
        if params.get("job_type") or params.get("jobType"):
            qs = qs.filter(job_type=params.get("job_type") or params["jobType"])
        if params.get("platform"):
            qs = qs.filter(spec__platform=params["platform"])
        if params.get("q"):
            qs = qs.filter(Q(job_type__icontains=params["q"]) | Q(description__icontains=params["q"]))
        for flag in ("public_plugin", "disabled"):
            if params.get(flag):
                qs = qs.filter(**{flag: _bool(params[flag], flag)})
        if params.get("paused"):
            qs = qs.filter(disabled=_bool(params["paused"], "paused"))
        if params.get("tags"):
            wanted = [t.strip() for t in params["tags"].split(",") if t.strip()]
            ids = [d.pk for d in qs.only("pk", "tags") if set(d.tags) & set(wanted)]
            qs = qs.filter(pk__in=ids)
        return self.paginate(request, qs, JobDefinitionSerializer)

    @extend_schema(
        request={"application/yaml": str, "application/json": dict},
        responses={201: JobDefinitionSerializer, 200: JobDefinitionSerializer},
        description="Upload a definition as YAML (application/yaml, text/yaml, application/x-yaml) or JSON. "
        "Uploading an existing job_type creates a new version; the same text again returns 200. "
        "`warnings` lists what loads but is risky, e.g. a param pasted unquoted into a script line.",
    )
    def post(self, request: Request) -> Response:
        body: bytes = request.data if isinstance(request.data, bytes) else b""
        if not body.strip():
            raise ValidationError("the request body is empty: send the job definition as YAML or JSON")
        content_type = request.content_type or ""
        # as in the reference, a body without a YAML or JSON type (curl's default) is read by its look
        if is_yaml(content_type) or (not _is_json(content_type) and not looks_like_json(body)):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(f"the definition is not UTF-8 text (byte {exc.start})") from exc
        else:
            text = services.definition_text_from_json(body)
        definition, created = services.definition_upload(org_id=self.org_id, user=request.user, text=text)
        # accepted, but said: fields not acted on (kept with the definition) and params pasted
        # bare into script lines (jobs/definition/lint.py)
        data = JobDefinitionSerializer(definition).data
        warnings = [*data["warnings"], *shell_warnings(text, (definition.spec or {}).get("required_params"))]
        return Response(
            {**data, "warnings": warnings},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DefinitionDetail(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read", "DELETE": "JobDefinition:Write"}

    @extend_schema(
        responses=JobDefinitionSerializer,
        parameters=[OpenApiParameter("version", str, description="with a job type: that version")],
    )
    def get(self, request: Request, key: str) -> Response:
        definition = selectors.definition_get(self.org_id, key, request.query_params.get("version"))
        return Response(JobDefinitionSerializer(definition).data)

    @extend_schema(responses={200: None})
    def delete(self, request: Request, key: str) -> Response:
        services.definition_delete(definition=selectors.definition_get(self.org_id, key))
        return Response(status=status.HTTP_200_OK)


class DefinitionYaml(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(responses={(200, "application/yaml"): str})
    def get(self, request: Request, key: str) -> HttpResponse:
        definition = selectors.definition_get(self.org_id, key, request.query_params.get("version"))
        return HttpResponse(definition.raw_yaml, content_type="application/yaml; charset=utf-8")


class DefinitionDot(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(responses={(200, "text/vnd.graphviz"): str})
    def get(self, request: Request, key: str) -> HttpResponse:
        definition = selectors.definition_get(self.org_id, key)
        graph = graph_spec(definition.pk, definition.raw_yaml)  # parsed once per version
        return HttpResponse(to_dot(graph), content_type="text/vnd.graphviz")


def dot_png_response(dot: str) -> HttpResponse:
    """The graph as a PNG drawn by Graphviz; 503 where it is not installed."""
    try:
        png = subprocess.run(
            ["dot", "-Tpng"], input=dot.encode(), capture_output=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return HttpResponse("graphviz 'dot' is not available", status=503, content_type="text/plain")
    return HttpResponse(png.stdout, content_type="image/png")


class DefinitionDotPng(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(responses={(200, "image/png"): bytes})
    def get(self, request: Request, key: str) -> HttpResponse:
        definition = selectors.definition_get(self.org_id, key)
        return dot_png_response(to_dot(graph_spec(definition.pk, definition.raw_yaml)))


class DefinitionVersions(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(
        responses=DefinitionVersionSerializer(many=True),
        parameters=[OpenApiParameter("page", int), OpenApiParameter("pageSize", int)],
        description="Every stored version of a job type, newest first (the reference's "
        "`/api/jobs/definitions/type/{type}/versions`).",
    )
    def get(self, request: Request, job_type: str) -> Response:
        versions = selectors.definitions_live(self.org_id).filter(job_type=job_type).order_by("-version")
        if not versions.exists():
            raise NotFound(f"no job type {job_type!r}")
        return self.paginate(request, versions, DefinitionVersionSerializer)


class DefinitionDisable(OrgAPIView):
    required_permissions = {"POST": "JobDefinition:Write"}
    disabled = True

    @extend_schema(request=None, responses=JobDefinitionSerializer)
    def post(self, request: Request, key: str) -> Response:
        definition = selectors.definition_get(self.org_id, key)
        definition = services.definition_set_disabled(definition=definition, disabled=self.disabled)
        return Response(JobDefinitionSerializer(definition).data)


class DefinitionEnable(DefinitionDisable):
    disabled = False


class DefinitionConcurrency(OrgAPIView):
    required_permissions = {"PUT": "JobDefinition:Write"}

    @extend_schema(request=ConcurrencyInput, responses=JobDefinitionSerializer)
    def put(self, request: Request, key: str) -> Response:
        raw = request.data if hasattr(request.data, "get") else {}
        if not raw:
            raw = request.query_params
        # the first name given, 0 included (0 holds every new request of the job type)
        value = next((raw.get(n) for n in ("concurrency", "max_concurrency") if raw.get(n) is not None), None)
        data = ConcurrencyInput(data={"concurrency": value})
        data.is_valid(raise_exception=True)
        definition = selectors.definition_get(self.org_id, key)
        definition = services.definition_set_concurrency(
            definition=definition, max_concurrency=data.validated_data["concurrency"]
        )
        return Response(JobDefinitionSerializer(definition).data)


class DefinitionStats(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(responses=dict)
    def get(self, request: Request, key: str) -> Response:
        from jobs.stats import definition_stats

        definition = selectors.definition_get(self.org_id, key)
        return Response(definition_stats(definition))


class PluginList(OrgAPIView):
    required_permissions = {"GET": "JobDefinition:Read"}

    @extend_schema(responses=JobDefinitionSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = selectors.public_plugins().order_by("job_type", "-version")
        if request.query_params.get("job_type"):
            qs = qs.filter(job_type=request.query_params["job_type"])
        return self.paginate(request, qs, JobDefinitionSerializer)


CONFIG_BODY = {"application/json": JobConfigInput, "application/yaml": JobConfigInput}


def _config_input(request: Request) -> dict[str, Any]:
    """A config from JSON or YAML, with the reference's ``Name``/``Value``/``Secret`` spelling too."""
    data = JobConfigInput(data=known_fields(request.data, JobConfigInput().fields))
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class ConfigListCreate(OrgAPIView):
    parser_classes = [MultiPartParser, ObjectBodyParser]
    required_permissions = {"GET": "Config:Read", "POST": "Config:Write"}

    @extend_schema(responses=JobConfigSerializer(many=True))
    def get(self, request: Request, key: str) -> Response:
        definition = selectors.definition_get(self.org_id, key)
        return self.paginate(
            request, selectors.job_configs(self.org_id, definition.job_type), JobConfigSerializer
        )

    @extend_schema(
        request=CONFIG_BODY,
        responses={201: JobConfigSerializer, 200: JobConfigSerializer},
        description="JSON or YAML; keys as `name`/`value`/`secret` or the reference's `Name`/`Value`/"
        "`Secret`. A name the job type already has is updated (200), as in the reference.",
    )
    def post(self, request: Request, key: str) -> Response:
        definition = selectors.definition_get(self.org_id, key)
        fields = _config_input(request)
        existing = selectors.job_configs(self.org_id, definition.job_type).filter(name=fields["name"]).first()
        config = services.job_config_save(
            org_id=self.org_id, job_type=definition.job_type, config=existing, **fields
        )
        code = status.HTTP_200_OK if existing is not None else status.HTTP_201_CREATED
        return Response(JobConfigSerializer(config).data, status=code)


class ConfigDetail(OrgAPIView):
    parser_classes = [MultiPartParser, ObjectBodyParser]
    required_permissions = {"GET": "Config:Read", "PUT": "Config:Write", "DELETE": "Config:Write"}

    def _config(self, key: str, config_id: int):  # type: ignore[no-untyped-def]
        definition = selectors.definition_get(self.org_id, key)
        return get_object_or_404(selectors.job_configs(self.org_id, definition.job_type), pk=config_id)

    @extend_schema(responses=JobConfigSerializer)
    def get(self, request: Request, key: str, config_id: int) -> Response:
        return Response(JobConfigSerializer(self._config(key, config_id)).data)

    @extend_schema(request=CONFIG_BODY, responses=JobConfigSerializer)
    def put(self, request: Request, key: str, config_id: int) -> Response:
        config = self._config(key, config_id)
        fields = _config_input(request)
        if config.secret and fields["secret"] and fields["value"] == REDACTED:
            fields["value"] = config.plain_value()  # the masked value sent back: keep the secret
        config = services.job_config_save(
            org_id=self.org_id, job_type=config.job_type, config=config, **fields
        )
        return Response(JobConfigSerializer(config).data)

    @extend_schema(responses={200: None})
    def delete(self, request: Request, key: str, config_id: int) -> Response:
        services.job_config_delete(config=self._config(key, config_id))
        return Response(status=status.HTTP_200_OK)
