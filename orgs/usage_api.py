"""``/api/orgs/usage_report``: jobs, tasks, CPU seconds, cost and storage per organization and
job type (the reference's POST with ``from``/``to`` in the body; GET with them as query
parameters). The caller's organization; a superuser's report covers every organization."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from orgs import usage
from orgs.authed import AuthedRequest

DEFAULT_DAYS = 30
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def parse_moment(raw: Any, name: str) -> datetime | None:
    """An ISO 8601 date-time or date (midnight UTC); None when absent; a 400 naming ``name``."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ValidationError({name: f"must be an ISO 8601 date or date-time, got {type(raw).__name__}"})
    try:
        value = parse_datetime(raw)
        if value is None and (day := parse_date(raw)) is not None:
            value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    except ValueError as exc:  # well-formed but not a date (2026-13-45)
        raise ValidationError({name: f"not a valid date: {raw!r} ({exc})"}) from None
    if value is None:
        raise ValidationError({name: f"not an ISO 8601 date or date-time: {raw!r}"})
    try:
        return (value if value.tzinfo else timezone.make_aware(value)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError({name: f"date out of range: {raw!r}"}) from None


def report_window(values: dict[str, Any]) -> tuple[datetime, datetime]:
    """``from`` (default: 30 days before ``to``) and ``to`` (default: now), ``from`` < ``to``.
    A date alone starts at its midnight (UTC); as ``to`` it includes its whole day."""
    end = parse_moment(values.get("to"), "to") or timezone.now()
    if _DATE_ONLY.match(str(values.get("to") or "")):
        end += timedelta(days=1)
    start = parse_moment(values.get("from"), "from") or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise ValidationError({"to": "must be after from"})
    return start, end


def report_for(user: Any, start: datetime, end: datetime) -> dict[str, Any]:
    return usage.usage_report(None if user.is_superuser else [user.organization_id], start, end)


_WINDOW = [
    OpenApiParameter(
        "from", str, description="start, ISO 8601 date or date-time; default 30 days before `to`"
    ),
    OpenApiParameter("to", str, description="end (exclusive); default now"),
]


class UsageReport(OrgAPIView):
    allow_without_org = True  # a superuser without an organization sees every one
    required_permissions = {"GET": "Subscription:Read", "POST": "Subscription:Read"}

    @extend_schema(parameters=_WINDOW, responses={200: dict})
    def get(self, request: AuthedRequest) -> Response:
        return self._report(request, dict(request.query_params.items()))

    @extend_schema(
        request={"application/json": {"type": "object", "properties": {"from": {"type": "string"},
                                                                          "to": {"type": "string"}}}},
        responses={200: dict},
        description="The reference's form: `from` and `to` in the JSON body.",
    )  # fmt: skip
    def post(self, request: AuthedRequest) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        return self._report(request, {**dict(request.query_params.items()), **body})

    def _report(self, request: AuthedRequest, values: dict[str, Any]) -> Response:
        if not request.user.is_superuser and not request.user.organization_id:
            raise ValidationError({"organization": "you belong to no organization"})
        start, end = report_window(values)
        return Response(report_for(request.user, start, end))
