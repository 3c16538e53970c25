from rest_framework import permissions


class IsOrgMember(permissions.BasePermission):
    """Authenticated and belonging to an organization: every tenant endpoint needs both."""

    message = "you must belong to an organization"

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "organization_id", None))
