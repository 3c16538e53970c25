"""The filters of the audit records, shared by ``GET /api/audits`` and the audit page; tenancy
first: a user sees their organization's records, a superuser every one."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from orgs.models import AuditRecord

MAX_ID = 2**63 - 1
DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
FILTERS = ("kind", "user", "object_type", "object_id", "from", "to", "organization_id")


class AuditFilterError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def visible_records(user: Any) -> QuerySet[AuditRecord]:
    if user.is_superuser:
        return AuditRecord.objects.all()
    return AuditRecord.objects.filter(organization_id=user.organization_id or 0)


def _moment(field: str, text: str, *, end: bool) -> datetime:
    """A date-time, or a date: its first moment (``from``) or the first of the next day (``to``)."""
    try:
        day = parse_date(text) if parse_date_only(text) else None
        moment = None if day else parse_datetime(text)
    except ValueError:
        moment = day = None
    if moment is None and day is None:
        raise AuditFilterError(field, f"not an ISO date or date-time: {text!r}")
    try:
        if moment is None:
            assert day is not None
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_default_timezone())
        moment.astimezone(UTC)  # the database's zone: out of range fails here, not in the query
    except (OverflowError, ValueError):
        raise AuditFilterError(field, f"out of range: {text!r}") from None
    return moment


def filter_records(user: Any, params: Mapping[str, str]) -> QuerySet[AuditRecord]:
    """``visible_records`` narrowed by ``params``; AuditFilterError names a bad value."""
    qs = visible_records(user)
    value = {name: (params.get(name) or "").strip() for name in FILTERS}
    if value["kind"]:
        kind = value["kind"]
        qs = (
            qs.filter(action=kind)
            if ":" in kind
            else qs.filter(Q(action=kind) | Q(action__startswith=kind + ":"))
        )
    if value["user"]:
        who = value["user"]
        is_id = who.isascii() and who.isdigit() and int(who) <= MAX_ID
        qs = qs.filter(user_id=int(who)) if is_id else qs.filter(username__iexact=who)
    if value["object_type"]:
        qs = qs.filter(object_type__iexact=value["object_type"])
    if value["object_id"]:
        qs = qs.filter(object_id=value["object_id"])
    start = _moment("from", value["from"], end=False) if value["from"] else None
    to_day = parse_date_only(value["to"])
    stop = _moment("to", value["to"], end=to_day) if value["to"] else None
    if start and stop and stop < start:
        raise AuditFilterError("to", "is before from")
    if start:
        qs = qs.filter(created_at__gte=start)
    if stop:
        # a date-only ``to`` includes its whole day (up to the next midnight); a date-time is inclusive
        qs = qs.filter(created_at__lt=stop) if to_day else qs.filter(created_at__lte=stop)
    if value["organization_id"]:
        org = value["organization_id"]
        if not (org.isascii() and org.isdigit() and int(org) <= MAX_ID):
            raise AuditFilterError("organization_id", f"not a number: {value['organization_id']!r}")
        qs = qs.filter(organization_id=int(value["organization_id"]))
    return qs


def parse_date_only(text: str) -> bool:
    """Whether ``text`` is a plain date (``2026-12-06``, no time part)."""
    return bool(DATE_ONLY.fullmatch(text))
