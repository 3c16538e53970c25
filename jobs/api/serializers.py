"""Output shapes of jobs resources, with the reference system's field names."""

from typing import Any

from rest_framework import serializers

from jobs.models import JobConfig, JobDefinition
from jobs.selectors import definition_warnings


class JobDefinitionSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    paused = serializers.BooleanField(source="disabled", read_only=True)
    tasks = serializers.SerializerMethodField()
    required_params = serializers.SerializerMethodField()
    methods = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()
    platform = serializers.SerializerMethodField()

    class Meta:
        model = JobDefinition
        fields = [
            "id", "job_type", "version", "sem_version", "description", "organization_id", "user_id",
            "max_concurrency", "disabled", "paused", "public_plugin", "cron_trigger", "tags", "methods",
            "required_params", "platform", "tasks", "raw_yaml", "warnings", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_tasks(self, obj: JobDefinition) -> list[dict[str, Any]]:
        return list(obj.spec.get("tasks", []))

    def get_required_params(self, obj: JobDefinition) -> list[str]:
        return list(obj.spec.get("required_params") or [])

    def get_platform(self, obj: JobDefinition) -> str:
        return str(obj.spec.get("platform") or "")

    def get_methods(self, obj: JobDefinition) -> list[str]:
        return sorted({t.get("method") or "" for t in obj.spec.get("tasks", [])} - {""})

    def get_warnings(self, obj: JobDefinition) -> list[str]:
        return definition_warnings(obj)


class DefinitionVersionSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_latest", read_only=True)

    class Meta:
        model = JobDefinition
        fields = [
            "id",
            "job_type",
            "version",
            "sem_version",
            "active",
            "disabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class JobConfigSerializer(serializers.ModelSerializer):
    # not get_value: that name is Field.get_value, which reads a field's input
    value = serializers.SerializerMethodField(method_name="shown_value")

    class Meta:
        model = JobConfig
        fields = ["id", "job_type", "name", "value", "secret", "created_at", "updated_at"]
        read_only_fields = fields

    def shown_value(self, obj: JobConfig) -> str:
        return obj.display_value()


class JobConfigInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    value = serializers.CharField(allow_blank=True, max_length=64 * 1024, trim_whitespace=False)
    secret = serializers.BooleanField(default=False)


class ConcurrencyInput(serializers.Serializer):
    concurrency = serializers.IntegerField(
        min_value=0, max_value=100_000,
        error_messages={"null": "required: a whole number from 0 to 100000 (`concurrency` or `max_concurrency`)"},
    )  # fmt: skip
