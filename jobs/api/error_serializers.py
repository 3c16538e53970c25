"""Error-code rule shapes, with the reference system's field names."""

from typing import Any

from rest_framework import serializers

from jobs.definition.error_rules import ACTIONS
from jobs.models import ErrorCode


class ErrorCodeSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True, allow_null=True)
    is_global = serializers.SerializerMethodField()

    class Meta:
        model = ErrorCode
        fields = [
            "id", "error_code", "regex", "exit_code", "description", "display_message", "display_code",
            "job_type", "task_type_scope", "platform_scope", "command_scope", "action", "hard_failure", "retry",
            "organization_id", "is_global", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_is_global(self, obj: ErrorCode) -> bool:
        return obj.organization_id is None


class ErrorCodeInput(serializers.Serializer):
    id = serializers.IntegerField(required=False, min_value=1, help_text="PUT /api/errors: the row to change")
    error_code = serializers.CharField(max_length=100)
    regex = serializers.CharField(max_length=500, required=False, allow_blank=True, trim_whitespace=False)
    exit_code = serializers.IntegerField(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    display_message = serializers.CharField(max_length=500, required=False, allow_blank=True)
    display_code = serializers.CharField(max_length=100, required=False, allow_blank=True)
    job_type = serializers.CharField(max_length=200, required=False, allow_blank=True)
    task_type_scope = serializers.CharField(max_length=200, required=False, allow_blank=True)
    platform_scope = serializers.CharField(max_length=100, required=False, allow_blank=True)
    command_scope = serializers.CharField(max_length=200, required=False, allow_blank=True)
    action = serializers.CharField(
        max_length=50, required=False, allow_blank=True, help_text=f"one of {', '.join(ACTIONS)}, or empty"
    )
    hard_failure = serializers.BooleanField(required=False)
    retry = serializers.IntegerField(required=False, min_value=0, max_value=100)
    is_global = serializers.BooleanField(
        required=False, default=False, help_text="a rule for every organization (superusers only)"
    )

    def validate_action(self, value: str) -> str:
        action = value.strip().upper()
        if action and action not in ACTIONS:
            raise serializers.ValidationError(f"unknown action {value!r} (one of {', '.join(ACTIONS)})")
        return action

    def validate_exit_code(self, value: int | None) -> int | None:
        return None if value == 0 else value  # the reference's 0 means "no exit code"

    def row_fields(self) -> dict[str, Any]:
        """The validated values that are columns of the row."""
        return {k: v for k, v in self.validated_data.items() if k not in ("id", "is_global")}
