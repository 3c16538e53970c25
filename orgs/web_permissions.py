"""The role check of the web pages: a decorator that refuses an action the user's role lacks,
and ``can`` in every template (``{% if can.JobRequest_Submit %}``) to hide what they cannot do."""

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def _permissions(request: HttpRequest) -> frozenset[str]:
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return frozenset()
    return user.permissions()


def requires(
    permission: str, *, methods: tuple[str, ...] | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Refuse (403) a request whose user's role lacks ``permission``; with ``methods``, only
    requests of those methods (a page that shows on GET and acts on POST)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user: Any = request.user
            applies = methods is None or request.method in methods
            if applies and user.is_authenticated and permission not in _permissions(request):
                raise PermissionDenied(f"this needs the {permission} permission (your role: {user.role})")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


class Can:
    """``can.JobRequest_Submit`` in a template: whether the user holds ``JobRequest:Submit``."""

    def __init__(self, granted: frozenset[str]) -> None:
        self.granted = granted

    def __getitem__(self, name: str) -> bool:
        return name.replace("_", ":", 1) in self.granted

    def __contains__(self, name: str) -> bool:
        return name in self.granted


def can(request: HttpRequest) -> dict[str, Can]:
    """Template context processor."""
    return {"can": Can(_permissions(request))}
