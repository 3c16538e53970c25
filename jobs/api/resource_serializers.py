"""Job resource shapes, with the reference system's field names (`resource_type`, `quota`,
`lease_timeout`, `resource_variables`, ...). Secret config values show as ``****``."""

from typing import Any

from rest_framework import serializers

from jobs.definition.durations import parse_duration
from jobs.models import JobResource, JobResourceConfig, JobResourceUse
from orgs import crypto

MAX_LEASE_SECS = 30 * 24 * 3600.0
# the reference's JSON writes a Go time.Duration: nanoseconds; a number this big is one of those
NANOSECONDS_FROM = 1_000_000
CONFIG_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$"


class ResourceConfigSerializer(serializers.ModelSerializer):
    job_resource_id = serializers.IntegerField(read_only=True)
    value = serializers.SerializerMethodField(method_name="masked_value")

    class Meta:
        model = JobResourceConfig
        fields = ["id", "job_resource_id", "name", "value", "secret", "created_at", "updated_at"]
        read_only_fields = fields

    def masked_value(self, obj: JobResourceConfig) -> str:
        return obj.display_value()


class ResourceUseSerializer(serializers.ModelSerializer):
    job_resource_id = serializers.IntegerField(read_only=True)
    job_request_id = serializers.IntegerField(read_only=True)
    task_execution_id = serializers.IntegerField(read_only=True)
    task_type = serializers.CharField(source="task_execution.task_type", read_only=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = JobResourceUse
        fields = [
            "id", "job_resource_id", "job_request_id", "task_execution_id", "task_type", "attempt", "user_id",
            "value", "active", "aborted", "created_at", "updated_at", "expires_at", "released_at",
        ]  # fmt: skip
        read_only_fields = fields


class ResourceSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)
    configs = ResourceConfigSerializer(many=True, read_only=True)
    resource_variables = serializers.SerializerMethodField(help_text="configs by name (secrets as ****)")
    uses = serializers.SerializerMethodField(help_text="the live leases")
    leased = serializers.SerializerMethodField(help_text="units leased now")
    remaining_quota = serializers.SerializerMethodField()

    class Meta:
        model = JobResource
        fields = [
            "id", "resource_type", "description", "platform", "category", "tags", "external_id",
            "valid_status", "quota", "lease_timeout", "disabled", "organization_id", "user_id",
            "resource_variables", "configs", "uses", "leased", "remaining_quota", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _uses(self, obj: JobResource) -> list[JobResourceUse]:
        live = getattr(obj, "live_uses", None)
        if live is None:
            live = list(obj.uses.filter(active=True).select_related("task_execution"))
        return live

    def get_resource_variables(self, obj: JobResource) -> dict[str, str]:
        return {c.name: c.display_value() for c in obj.configs.all()}

    def get_uses(self, obj: JobResource) -> list[dict[str, Any]]:
        return ResourceUseSerializer(self._uses(obj), many=True).data  # type: ignore[return-value]

    def get_leased(self, obj: JobResource) -> int:
        return sum(u.value for u in self._uses(obj))

    def get_remaining_quota(self, obj: JobResource) -> int:
        return max(obj.quota - self.get_leased(obj), 0)


class LeaseTimeoutField(serializers.Field):
    """Seconds, a Go duration text ("90s", "5m") or, as the reference's JSON writes it, nanoseconds."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, int | float) and not isinstance(data, bool) and data >= NANOSECONDS_FROM:
            data = data / 1e9
        try:
            seconds = parse_duration(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if not 0 < seconds <= MAX_LEASE_SECS:
            raise serializers.ValidationError(f"must be more than 0s and at most 30 days, got {data!r}")
        return seconds

    def to_representation(self, value: float) -> float:
        return value


class ResourceConfigInput(serializers.Serializer):
    name = serializers.RegexField(CONFIG_NAME, max_length=200, error_messages={
        "invalid": "use letters, digits, '_', '.' or '-', starting with a letter or '_'"})  # fmt: skip
    value = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    secret = serializers.BooleanField(required=False, default=False)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("value"), bool | int | float):
            data = {
                **data,
                "value": str(data["value"]).lower()
                if isinstance(data["value"], bool)
                else str(data["value"]),
            }
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("secret") and (problem := crypto.short_secret_problem(attrs["value"])):
            raise serializers.ValidationError({"value": problem})
        return attrs


class ResourceInput(serializers.Serializer):
    resource_type = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    platform = serializers.CharField(required=False, allow_blank=True, max_length=100)
    category = serializers.CharField(required=False, allow_blank=True, max_length=100)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=100)
    valid_status = serializers.BooleanField(required=False)
    quota = serializers.IntegerField(min_value=1, max_value=1_000_000)
    lease_timeout = LeaseTimeoutField(required=False)
    disabled = serializers.BooleanField(required=False)
    resource_variables = serializers.DictField(
        required=False, help_text="configs by name (the reference's way to set them)"
    )
    configs = ResourceConfigInput(many=True, required=False, help_text="configs with their `secret` flag")

    def validate_tags(self, value: list[str]) -> list[str]:
        return [t.strip().lower() for t in value if t.strip()]

    def validate_resource_variables(self, value: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for name, item in value.items():
            one = ResourceConfigInput(data={"name": name, "value": item})
            if not one.is_valid():
                problems = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in one.errors.items())
                raise serializers.ValidationError(f"{name!r}: {problems}")
            out.append(dict(one.validated_data))
        return out

    def row_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.validated_data.items() if k not in ("resource_variables", "configs")}

    def config_rows(self) -> list[dict[str, Any]]:
        return [
            *self.validated_data.get("resource_variables", []),
            *map(dict, self.validated_data.get("configs", [])),
        ]
