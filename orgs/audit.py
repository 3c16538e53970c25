"""The one way an audit record is written: who (user or API token), what, which object, when,
from where, and a summary that never holds a secret value."""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.db.models import Model
from django.http import HttpRequest, HttpResponse

from orgs.models import ApiToken, AuditRecord

# The request being served: services record changes with it, so the API, the web pages and the
# admin share one record call (DRF sets ``user`` and ``auth`` on the Django request it wraps).
_current: ContextVar[Any] = ContextVar("audit_request", default=None)


class CurrentRequestMiddleware:
    """Makes the request being served visible to ``record_change``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        reset = _current.set(request)
        try:
            return self.get_response(request)
        finally:
            _current.reset(reset)


def _remote_addr(request: Any) -> str | None:
    meta = getattr(request, "META", None) or {}
    return meta.get("REMOTE_ADDR") or None


def record(
    request: Any,
    action: str,
    obj: Model | None = None,
    *,
    object_type: str = "",
    object_id: str | int = "",
    organization_id: int | None = None,
    summary: str = "",
    data: dict[str, Any] | None = None,
    user: Any = None,
) -> AuditRecord:
    """Record ``action`` (e.g. ``"OrgConfig:Reveal"``) done through ``request`` (a Django or DRF
    request; its user, its API token when it came with one, its remote address) on ``obj``.
    The organization is the object's when it has one, else the acting user's; ``user`` names
    the actor when the request's user is not it (yet), e.g. someone signing up."""
    user = user or getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    token = getattr(request, "auth", None)
    token = token if isinstance(token, ApiToken) else None
    if obj is not None:
        object_type = object_type or type(obj).__name__
        object_id = object_id or obj.pk
        if organization_id is None:
            organization_id = getattr(obj, "organization_id", None)
    if organization_id is None and user is not None:
        organization_id = getattr(user, "organization_id", None)
    return AuditRecord.objects.create(
        organization_id=organization_id,
        user=user,
        username=getattr(user, "username", "") if user is not None else "",
        token=token,
        token_name=token.name if token else "",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        remote_addr=_remote_addr(request),
        summary=summary[:500],
        data=data or {},
    )


def record_change(
    action: str, obj: Model | None = None, *, user: Any = None, **fields: Any
) -> AuditRecord | None:
    """``record`` with the request being served. Outside one (a command, the queen, a cron
    trigger) only when ``user`` names the actor; else nothing: the system acting on its own."""
    request = _current.get()
    if request is None and user is None:
        return None
    if user is None:
        user = getattr(request, "user", None)
    return record(request, action, obj, user=user, **fields)
