from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from orgs.admin_forms import SecretValueForm
from orgs.admin_scoping import OrgScopedAdmin
from orgs.models import ApiToken, Invitation, Organization, OrgConfig, User


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "bundle_id", "max_concurrency", "created_at"]
    search_fields = ["name", "bundle_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        user: Any = request.user
        return qs if user.is_superuser else qs.filter(pk=user.organization_id)


@admin.register(User)
class UserAdmin(BaseUserAdmin, OrgScopedAdmin):
    list_display = ["username", "email", "organization", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["username", "email"]
    fieldsets = (*BaseUserAdmin.fieldsets, ("Organization", {"fields": ("organization", "notify_email")}))

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return None  # fieldsets decide; a staff user's organization is forced on save


@admin.register(ApiToken)
class ApiTokenAdmin(OrgScopedAdmin):
    list_display = ["name", "user", "created_at", "expires_at", "last_used_at"]
    search_fields = ["name", "user__username"]
    readonly_fields = ["digest", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are issued where their plain value can be shown once


@admin.register(OrgConfig)
class OrgConfigAdmin(OrgScopedAdmin):
    list_display = ["name", "display_value", "secret", "updated_at"]
    search_fields = ["name"]
    list_filter = ["secret"]
    form = SecretValueForm
    exclude = ["value"]


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    list_display = ["email", "invited_by", "created_at", "expires_at", "accepted_at"]
    search_fields = ["email"]
