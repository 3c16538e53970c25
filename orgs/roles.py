"""Roles of a member of an organization and the named permissions each grants (pure: no Django).

Permission names follow the reference system's ``Resource:Action`` style. A request is allowed
when the permission a view declares for its method is in the caller's effective permissions:
the role's, narrowed by the API token's scopes when it has any.
"""

from collections.abc import Iterable

OWNER, ADMIN, MEMBER, VIEWER = "owner", "admin", "member", "viewer"
# strongest first: a role may only grant roles at or below its own rank
ROLES: tuple[str, ...] = (OWNER, ADMIN, MEMBER, VIEWER)

# Declared by a route any signed-in user may reach (the view decides, e.g. creating an org).
ANY_USER = "Authenticated"
# Installation-wide: only superusers hold it (system configs, every organization).
SYSTEM_ADMIN = "System:Admin"

_VIEWER = frozenset({
    "JobDefinition:Read", "JobRequest:Read", "Config:Read", "Artifact:Read", "Ant:Read",
    "User:Read", "Org:Read", "Subscription:Read", "Profile:Write", "Token:Write", "ErrorCode:Read",
    "JobResource:Read",
})  # fmt: skip
_MEMBER = _VIEWER | {
    "JobDefinition:Write", "JobRequest:Submit", "JobRequest:Cancel", "Config:Write", "Artifact:Write",
}  # fmt: skip
_ADMIN = _MEMBER | {
    "JobRequest:Approve", "Config:Reveal", "User:Write", "Ant:Register", "Ant:Write", "Audit:Read",
    "ErrorCode:Write", "JobResource:Write",
}  # fmt: skip
_OWNER = _ADMIN | {"Subscription:Write", "Org:Admin"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    OWNER: frozenset(_OWNER),
    ADMIN: frozenset(_ADMIN),
    MEMBER: frozenset(_MEMBER),
    VIEWER: _VIEWER,
}
ALL_PERMISSIONS: frozenset[str] = ROLE_PERMISSIONS[OWNER] | {SYSTEM_ADMIN}


def rank(role: str) -> int:
    """Lower is stronger; an unknown role ranks below every known one."""
    return ROLES.index(role) if role in ROLES else len(ROLES)


def can_grant(granter_role: str, role: str) -> bool:
    return role in ROLES and rank(granter_role) <= rank(role)


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Token scopes as permission names: a role name stands for all its permissions.
    Raises ValueError naming an unknown scope."""
    out: set[str] = set()
    for scope in scopes:
        if scope in ROLE_PERMISSIONS:
            out |= ROLE_PERMISSIONS[scope]
        elif scope in ALL_PERMISSIONS:
            out.add(scope)
        else:
            raise ValueError(f"unknown scope {scope!r}: use a role ({', '.join(ROLES)}) or a permission name")
    return frozenset(out)


def effective(role: str, *, superuser: bool = False, scopes: Iterable[str] | None = None) -> frozenset[str]:
    """What a user of ``role`` may do, narrowed to ``scopes`` (a token's) when given and non-empty."""
    granted = ALL_PERMISSIONS if superuser else ROLE_PERMISSIONS.get(role, frozenset())
    scope_list = list(scopes or [])
    if scope_list:
        granted = granted & expand_scopes(scope_list)
    return frozenset(granted)
