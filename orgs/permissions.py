"""Who may call an API view: a view declares ``required_permissions``, one permission name per
HTTP method (``orgs.roles``), and ``HasPermission`` checks it against the caller's effective
permissions: the user's role, narrowed by the API token's scopes."""

from typing import Any

from rest_framework import permissions

from orgs import roles

SAFE = ("GET", "HEAD", "OPTIONS")
# a view that declares nothing for a method: reads for every member, changes for org admins only
FALLBACK_READ = "Org:Read"
FALLBACK_WRITE = "Org:Admin"


def effective_permissions(user: Any, auth: Any = None) -> frozenset[str]:
    """The caller's permissions: through a token (``auth``) when it came with one."""
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    if auth is not None and hasattr(auth, "permissions"):
        return auth.permissions()
    return user.permissions()


def required_permission(view: Any, method: str) -> str:
    declared: dict[str, str] = getattr(view, "required_permissions", None) or {}
    if method in declared:
        return declared[method]
    if method in ("HEAD", "OPTIONS") and "GET" in declared:
        return declared["GET"]
    return FALLBACK_READ if method in SAFE else FALLBACK_WRITE


def has(request: Any, permission: str) -> bool:
    return permission in effective_permissions(request.user, getattr(request, "auth", None))


class IsOrgMember(permissions.BasePermission):
    """Authenticated and belonging to an organization: every tenant endpoint needs both."""

    message = "you must belong to an organization"

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "organization_id", None))


class HasPermission(permissions.BasePermission):
    """Member of an organization (unless the view sets ``allow_without_org``) holding the
    permission the view requires for the request's method."""

    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = required_permission(view, request.method)
        if needed == roles.ANY_USER:
            return True
        if not getattr(user, "organization_id", None) and not getattr(view, "allow_without_org", False):
            self.message = "you must belong to an organization"
            return False
        if needed not in effective_permissions(user, request.auth):
            self.message = f"this needs the {needed} permission (your role: {getattr(user, 'role', '?')})"
            return False
        return True


def require(request: Any, permission: str) -> None:
    """Raise 403 unless the caller holds ``permission`` (for checks that depend on the object)."""
    from rest_framework.exceptions import PermissionDenied

    if not has(request, permission):
        raise PermissionDenied(f"this needs the {permission} permission")
