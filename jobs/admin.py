from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.models import (
    ErrorCode,
    JobConfig,
    JobDefinition,
    JobExecution,
    JobRequest,
    JobRequestParam,
    JobResource,
    JobResourceConfig,
    JobResourceUse,
    QueenLease,
    SystemConfig,
    TaskExecution,
    TaskLogChunk,
)
from orgs.admin_forms import SecretValueForm
from orgs.admin_scoping import AuditedAdmin, OrgScopedAdmin, ReadOnlyAdmin, ReadOnlyInline


@admin.register(JobDefinition)
class JobDefinitionAdmin(OrgScopedAdmin):
    read_permission, write_permission = "JobDefinition:Read", "JobDefinition:Write"
    list_display = ["job_type", "version", "sem_version", "max_concurrency", "disabled", "is_latest", "public_plugin",
                    "cron_trigger", "created_at"]  # fmt: skip
    list_filter = ["disabled", "is_latest", "public_plugin"]
    search_fields = ["job_type", "description"]
    readonly_fields = ["job_type", "version", "raw_yaml", "spec", "content_sha256", "is_latest", "created_by",
                       "created_at", "updated_at"]  # fmt: skip
    fields = ["job_type", "version", "sem_version", "description", "max_concurrency", "disabled", "cron_trigger",
              "public_plugin", "tags", "is_latest", "deleted_at", "raw_yaml", "spec", "content_sha256", "created_by",
              "created_at", "updated_at"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the API or UI so they are validated


@admin.register(JobConfig)
class JobConfigAdmin(OrgScopedAdmin):
    read_permission, write_permission = "Config:Read", "Config:Write"
    list_display = ["job_type", "name", "display_value", "secret", "updated_at"]
    list_filter = ["secret"]
    search_fields = ["job_type", "name"]
    form = SecretValueForm
    exclude = ["value"]


class ParamInline(ReadOnlyInline):
    model = JobRequestParam
    fields = readonly_fields = ["name", "display_value", "secret"]


class ExecutionInline(ReadOnlyInline):
    model = JobExecution
    fields = readonly_fields = ["id", "job_state", "error_code", "started_at", "ended_at"]


@admin.register(JobRequest)
class JobRequestAdmin(ReadOnlyAdmin):
    read_permission, write_permission = "JobRequest:Read", "JobRequest:Cancel"
    list_display = ["id", "job_type", "job_version", "job_state", "job_priority", "scheduled_at", "retried",
                    "user", "created_at"]  # fmt: skip
    list_filter = ["job_state", "cron_triggered"]
    search_fields = ["job_type", "user_key", "job_group", "=id"]
    date_hierarchy = "created_at"
    inlines = [ParamInline, ExecutionInline]


class TaskInline(ReadOnlyInline):
    model = TaskExecution
    fields = readonly_fields = [
        "task_type", "method", "task_state", "exit_code", "error_code", "ant_id", "retried", "started_at", "ended_at"
    ]  # fmt: skip


@admin.register(JobExecution)
class JobExecutionAdmin(ReadOnlyAdmin):
    read_permission, write_permission = "JobRequest:Read", "JobRequest:Cancel"
    list_display = ["id", "job_request", "job_state", "error_code", "started_at", "ended_at"]
    list_filter = ["job_state"]
    search_fields = ["=id", "job_request__job_type"]
    inlines = [TaskInline]


@admin.register(TaskExecution)
class TaskExecutionAdmin(ReadOnlyAdmin):
    read_permission, write_permission = "JobRequest:Read", "JobRequest:Cancel"
    list_display = ["id", "task_type", "method", "task_state", "exit_code", "error_code", "ant_id", "attempt",
                    "started_at", "ended_at"]  # fmt: skip
    list_filter = ["task_state", "method"]
    search_fields = ["task_type", "ant_id", "=job_execution__job_request__id"]


@admin.register(TaskLogChunk)
class TaskLogChunkAdmin(ReadOnlyAdmin):
    read_permission, write_permission = "JobRequest:Read", "JobRequest:Cancel"
    list_display = ["id", "task_execution", "attempt", "first_seq", "last_seq", "created_at"]
    search_fields = ["=task_execution__id", "text"]


@admin.register(QueenLease)
class QueenLeaseAdmin(admin.ModelAdmin):
    list_display = ["name", "holder", "expires_at"]
    readonly_fields = ["name", "holder", "expires_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # queens take leases themselves

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))


@admin.register(ErrorCode)
class ErrorCodeAdmin(OrgScopedAdmin):
    read_permission, write_permission = "Config:Read", "Config:Write"
    list_display = [
        "error_code",
        "exit_code",
        "regex",
        "job_type",
        "task_type_scope",
        "action",
        "hard_failure",
    ]
    list_filter = ["hard_failure", "action"]
    search_fields = ["error_code", "regex", "description"]


@admin.register(SystemConfig)
class SystemConfigAdmin(AuditedAdmin):
    list_display = ["scope", "kind", "name", "display_value", "secret"]
    list_filter = ["scope", "kind", "secret"]
    search_fields = ["name"]
    form = SecretValueForm
    exclude = ["value"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    has_view_permission = has_change_permission = has_add_permission = has_delete_permission = (  # type: ignore[assignment]
        lambda self, request, obj=None: bool(getattr(request.user, "is_superuser", False))
    )


class ResourceConfigInline(admin.TabularInline):
    model = JobResourceConfig
    form = SecretValueForm
    exclude = ["value"]
    extra = 0


class LiveLeaseInline(ReadOnlyInline):
    model = JobResourceUse
    verbose_name_plural = "live leases"
    fields = readonly_fields = [
        "job_request",
        "task_execution",
        "attempt",
        "value",
        "created_at",
        "expires_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(active=True)


@admin.register(JobResource)
class JobResourceAdmin(OrgScopedAdmin):
    read_permission, write_permission = "JobResource:Read", "JobResource:Write"
    list_display = [
        "resource_type",
        "platform",
        "category",
        "quota",
        "lease_timeout",
        "disabled",
        "valid_status",
    ]
    list_filter = ["disabled", "valid_status", "platform"]
    search_fields = ["resource_type", "description", "category", "external_id"]
    readonly_fields = ["user", "created_at", "updated_at"]
    inlines = [ResourceConfigInline, LiveLeaseInline]


@admin.register(JobResourceUse)
class JobResourceUseAdmin(ReadOnlyAdmin):
    read_permission, write_permission = "JobResource:Read", "JobResource:Write"  # deleting frees a lease
    list_display = ["job_resource", "job_request", "task_execution", "attempt", "value", "active", "aborted",
                    "created_at", "expires_at", "released_at"]  # fmt: skip
    list_filter = ["active", "aborted"]
