"""Admin classes that show a staff user only their organization's rows."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


def role_allows(request: HttpRequest, permission: str) -> bool:
    """Whether the user's role (``orgs.roles``) holds ``permission``; superusers hold all."""
    user: Any = request.user
    return bool(user.is_active and (user.is_superuser or permission in user.permissions()))


def _changed_fields(message: Any) -> list[str]:
    """The field names of an admin change message (never their values)."""
    fields: list[str] = []
    for part in message if isinstance(message, list) else []:
        for detail in part.values() if isinstance(part, dict) else []:
            fields += detail.get("fields", []) if isinstance(detail, dict) else []
    return fields


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete made through the admin goes to the audit log too."""

    def _audit(self, request: HttpRequest, obj: Any, verb: str, summary: str, **data: Any) -> None:
        from orgs import audit

        audit.record(
            request, f"{type(obj).__name__}:{verb}", obj, summary=f"admin: {summary}"[:500], data=data
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "Create", f"added {obj}")
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        fields = _changed_fields(message)
        self._audit(
            request, obj, "Update", f"changed {', '.join(fields) or 'nothing'} of {obj}", fields=fields
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            self._audit(request, obj, "Delete", f"deleted {obj}")
        return super().log_deletions(request, queryset)  # type: ignore[misc]  # Django 5.1 API, not in django-stubs 5.1.1


class OrgScopedAdmin(AuditedAdmin):
    """Superusers see every organization; other staff only their own. Besides Django's model
    permissions, the staff user's role must hold ``read_permission`` to see the rows and
    ``write_permission`` to add, change or delete them."""

    org_field = "organization"
    read_permission = "Org:Read"
    write_permission = "Org:Admin"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return role_allows(request, self.read_permission) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, self.read_permission) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return role_allows(request, self.write_permission) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, self.write_permission) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return role_allows(request, self.write_permission) and super().has_delete_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        user: Any = request.user
        if user.is_superuser:
            return qs
        if not getattr(user, "organization_id", None):
            return qs.none()
        return qs.filter(**{f"{self.org_field}_id": user.organization_id})

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        user: Any = request.user
        if user.is_superuser and self.org_field not in filters:
            filters.append(self.org_field)
        return filters

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        excluded = list(super().get_exclude(request, obj) or [])
        user: Any = request.user
        if not user.is_superuser and self.org_field == "organization":
            excluded.append("organization")
        return excluded

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        user: Any = request.user
        if not user.is_superuser and self.org_field == "organization":
            obj.organization_id = user.organization_id
        super().save_model(request, obj, form, change)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        user: Any = request.user
        related = db_field.related_model
        if (
            not user.is_superuser
            and hasattr(related, "organization_id")
            and related.__name__ != "Organization"
        ):
            kwargs["queryset"] = related._default_manager.filter(organization_id=user.organization_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyAdmin(OrgScopedAdmin):
    """Execution history: viewable and deletable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
