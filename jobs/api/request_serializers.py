"""Job request shapes: submission input and the request with its execution and tasks."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.redaction import redact, secret_values
from jobs.services.requests import MAX_JOB_PRIORITY, MIN_JOB_PRIORITY


@extend_schema_field(
    {"oneOf": [{"type": "object", "additionalProperties": {"type": "string"}},
               {"type": "array", "items": {"type": "object"}}]}
)  # fmt: skip
class ParamsField(serializers.Field):
    """``params`` as an object ``{"name": value}`` or the reference's list of ``{name, value, secret}``."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            return {"values": data, "secret": set()}
        if isinstance(data, list):
            values: dict[str, Any] = {}
            secret: set[str] = set()
            for i, item in enumerate(data):
                if not isinstance(item, dict) or "name" not in item:
                    raise serializers.ValidationError(f"item {i} must be an object with name and value")
                values[str(item["name"])] = item.get("value", "")
                if item.get("secret"):
                    secret.add(str(item["name"]))
            return {"values": values, "secret": secret}
        raise serializers.ValidationError("must be an object of name to value")

    def to_representation(self, value: Any) -> Any:
        return value


class JobRequestInput(serializers.Serializer):
    job_type = serializers.CharField(max_length=200)
    job_version = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    params = ParamsField(required=False, default=dict)
    job_priority = serializers.IntegerField(
        required=False, default=0, min_value=MIN_JOB_PRIORITY, max_value=MAX_JOB_PRIORITY
    )
    job_group = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    user_key = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class JobRequestManyInput(serializers.Serializer):
    requests = serializers.ListField(child=serializers.DictField(), help_text="JobRequestInput objects")


class TaskExecutionSerializer(serializers.ModelSerializer):
    task_execution_id = serializers.IntegerField(source="id", read_only=True)
    job_execution_id = serializers.IntegerField(read_only=True)
    contexts = serializers.JSONField(source="context", read_only=True)

    class Meta:
        model = TaskExecution
        fields = [
            "id", "task_execution_id", "job_execution_id", "task_type", "method", "task_state", "task_order",
            "allow_failure", "exit_code", "exit_message", "error_code", "error_message", "failed_command",
            "retried", "attempt", "ant_id", "started_at", "ended_at", "contexts", "stdout", "cost_factor",
        ]  # fmt: skip
        read_only_fields = fields


class JobExecutionSerializer(serializers.ModelSerializer):
    tasks = TaskExecutionSerializer(many=True, read_only=True)
    contexts = serializers.JSONField(source="context", read_only=True)
    job_request_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = JobExecution
        fields = [
            "id", "job_request_id", "job_state", "exit_code", "exit_message", "error_code", "error_message",
            "contexts", "cpu_secs", "started_at", "ended_at", "updated_at", "tasks",
        ]  # fmt: skip
        read_only_fields = fields


class JobRequestSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)
    job_definition_id = serializers.IntegerField(read_only=True)
    parent_id = serializers.IntegerField(read_only=True, allow_null=True)
    job_execution_id = serializers.IntegerField(source="last_execution_id", read_only=True, allow_null=True)
    params = serializers.SerializerMethodField()

    class Meta:
        model = JobRequest
        fields = [
            "id", "job_type", "job_version", "job_definition_id", "job_state", "job_priority", "job_group",
            "user_key", "platform", "scheduled_at", "organization_id", "user_id", "parent_id", "cron_triggered",
            "triggered_by", "retried", "schedule_attempts", "state_message", "error_code", "error_message", "job_execution_id",
            "params", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_params(self, obj: JobRequest) -> dict[str, str]:
        return {p.name: p.display_value() for p in obj.params.all()}


class JobRequestDetailSerializer(JobRequestSerializer):
    execution = serializers.SerializerMethodField()

    class Meta(JobRequestSerializer.Meta):
        fields = [*JobRequestSerializer.Meta.fields, "execution"]
        read_only_fields = fields

    def get_execution(self, obj: JobRequest) -> dict[str, Any] | None:
        execution = obj.last_execution
        if execution is None:
            return None
        # a task may print or export a secret: mask every secret value of this request
        return redact(JobExecutionSerializer(execution).data, secret_values(obj))
