"""API errors: always JSON with an ``error`` sentence; never a bare 500 for bad input."""

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orgs.usage import QuotaExceeded

log = logging.getLogger(__name__)


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out.extend(_flatten(value, f"{prefix}{name}: " if name else prefix))
        return out
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, QuotaExceeded):  # a plan's limit: 429 or 413 naming the limit and the usage
        return Response({"error": exc.messages[0], "limit": exc.limit}, status=exc.status)
    if isinstance(exc, ObjectDoesNotExist):
        exc = Http404(str(exc))
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.messages)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Http404):
        response.data = {"error": "not found"}
    elif isinstance(response.data, dict) and "error" in response.data:
        pass
    else:
        messages = _flatten(response.data)
        body: dict[str, Any] = {"error": "; ".join(messages)}
        if isinstance(exc, exceptions.ValidationError):
            body["errors"] = messages
        response.data = body
    if response.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        log.error("API error %s: %s", response.status_code, exc)
    return response
