"""Output of the ants and executors API (read-only)."""

from typing import Any

from rest_framework import serializers

from ants.models import AntRegistration


class AntSerializer(serializers.ModelSerializer):
    """An ant registration; ``allocations`` holds only the job requests the caller may see
    (``visible_request_ids`` in the context; None: all of them)."""

    allocations = serializers.SerializerMethodField()

    class Meta:
        model = AntRegistration
        fields = [
            "id", "ant_id", "ant_topic", "tags", "methods", "max_capacity", "current_load",
            "total_executed", "allocations", "alive", "shutting_down", "organization_id",
            "last_heartbeat_at", "ant_started_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_allocations(self, obj: AntRegistration) -> dict[str, dict[str, str]]:
        visible = self.context.get("visible_request_ids")
        allocations = obj.allocations or {}
        if visible is None:
            return allocations
        return {k: v for k, v in allocations.items() if str(k) in visible}


class ContainerSerializer(serializers.Serializer):
    """A running container (DOCKER) or pod (KUBERNETES) of a task, as its ant last reported it."""

    id = serializers.CharField()
    name = serializers.CharField(required=False, default="")
    method = serializers.CharField(required=False, default="")
    ant_id = serializers.CharField()
    image = serializers.CharField(required=False, default="")
    state = serializers.CharField(required=False, default="")
    role = serializers.CharField(required=False, default="")
    started_at = serializers.FloatField(required=False, allow_null=True, default=None)
    organization_id = serializers.CharField(required=False, default="")
    job_request_id = serializers.CharField(required=False, default="")
    task_execution_id = serializers.CharField(required=False, default="")
    attempt = serializers.CharField(required=False, default="")
    task_type = serializers.CharField(required=False, default="")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            name: instance.get(name, field.default if field.default is not serializers.empty else None)
            for name, field in self.fields.items()
        }


class TerminateAccepted(serializers.Serializer):
    id = serializers.CharField()
    ant_id = serializers.CharField()
    status = serializers.CharField()
