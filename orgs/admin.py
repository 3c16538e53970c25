from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from orgs.admin_forms import SecretValueForm
from orgs.admin_scoping import AuditedAdmin, OrgScopedAdmin, role_allows
from orgs.models import (
    ApiToken,
    AuditRecord,
    Invitation,
    Organization,
    OrgConfig,
    Subscription,
    User,
    UserConfig,
)


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = ["name", "bundle_id", "max_concurrency", "created_at"]
    search_fields = ["name", "bundle_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        user: Any = request.user
        return qs if user.is_superuser else qs.filter(pk=user.organization_id)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, "Org:Admin") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, "Org:Admin") and super().has_delete_permission(request, obj)


@admin.register(User)
class UserAdmin(BaseUserAdmin, OrgScopedAdmin):
    read_permission, write_permission = "User:Read", "User:Write"
    list_display = ["username", "email", "organization", "role", "is_staff", "is_active", "last_login"]
    list_filter = ["role", "is_staff", "is_active"]
    search_fields = ["username", "email"]
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("Organization", {"fields": ("organization", "role", "notify_email")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        user: Any = request.user
        if not user.is_superuser:
            # no way up through the admin: powers beyond the role are the superuser's to give
            fields += ["is_superuser", "user_permissions", "groups"]
            if not role_allows(request, "Org:Admin"):
                fields.append("role")
        return fields

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return None  # fieldsets decide; a staff user's organization is forced on save


@admin.register(ApiToken)
class ApiTokenAdmin(OrgScopedAdmin):
    read_permission, write_permission = "User:Read", "User:Write"
    list_display = ["name", "user", "created_at", "expires_at", "last_used_at"]
    search_fields = ["name", "user__username"]
    readonly_fields = ["digest", "scopes", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are issued where their plain value can be shown once


@admin.register(OrgConfig)
class OrgConfigAdmin(OrgScopedAdmin):
    read_permission, write_permission = "Config:Read", "Config:Write"
    list_display = ["name", "display_value", "secret", "updated_at"]
    search_fields = ["name"]
    list_filter = ["secret"]
    form = SecretValueForm
    exclude = ["value"]


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    """Invitations are made on the Members page or the API (role checked, link mailed); here
    they are seen, shortened or withdrawn."""

    read_permission, write_permission = "User:Read", "User:Write"
    list_display = ["email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_by"]
    list_filter = ["role"]
    search_fields = ["email"]
    readonly_fields = ["email", "role", "code", "invited_by", "accepted_by", "accepted_at", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(UserConfig)
class UserConfigAdmin(OrgScopedAdmin):
    read_permission, write_permission = "Config:Read", "Config:Write"
    list_display = ["name", "user", "display_value", "secret", "updated_at"]
    search_fields = ["name", "user__username"]
    list_filter = ["secret"]
    form = SecretValueForm
    exclude = ["value"]


@admin.register(Subscription)
class SubscriptionAdmin(OrgScopedAdmin):
    read_permission, write_permission = "Subscription:Read", "Subscription:Write"
    list_display = [
        "organization",
        "policy",
        "period",
        "max_concurrency",
        "cpu_quota",
        "disk_quota",
        "active",
    ]
    list_filter = ["policy", "period", "active"]


@admin.register(AuditRecord)
class AuditRecordAdmin(OrgScopedAdmin):
    """Read-only: the record of who did what is never edited by hand."""

    read_permission, write_permission = "Audit:Read", "Org:Admin"
    list_display = [
        "created_at",
        "username",
        "token_name",
        "action",
        "object_type",
        "object_id",
        "remote_addr",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["username", "action", "object_id", "summary"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
