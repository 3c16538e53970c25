"""Reads and writes of error-code rules (``ErrorCode`` rows): an organization's own and the
global ones (no organization), which only superusers change."""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404

from jobs.definition.error_rules import ErrorRule, regex_problem
from jobs.models import ErrorCode


def error_codes_visible(org_id: int | None) -> QuerySet[ErrorCode]:
    """The organization's own rows and the global ones."""
    own = Q(organization_id=org_id) if org_id else Q(pk__in=[])
    return ErrorCode.objects.filter(own | Q(organization__isnull=True))


def error_code_get(org_id: int | None, pk: int) -> ErrorCode:
    """A visible row; another organization's is not found."""
    found = error_codes_visible(org_id).filter(pk=pk).first()
    if found is None:
        raise Http404("no such error code")
    return found


def error_rules_for(org_id: int, job_type: str) -> list[ErrorRule]:
    """The rules that may apply to a task of ``job_type`` in ``org_id``, for the pure matcher."""
    rows = error_codes_visible(org_id).filter(job_type__in=["", "*", job_type])
    return [
        ErrorRule(
            error_code=r.error_code,
            regex=r.regex,
            exit_code=r.exit_code,
            job_type=r.job_type,
            task_type_scope=r.task_type_scope,
            platform_scope=r.platform_scope,
            command_scope=r.command_scope,
            action=r.action,
            retry=r.retry,
            hard_failure=r.hard_failure,
            own=r.organization_id is not None,
            rule_id=r.pk,
        )  # fmt: skip
        for r in rows
    ]


def _may_change(row: ErrorCode, org_id: int | None, superuser: bool) -> None:
    if row.organization_id is None and not superuser:
        raise PermissionDenied("only a superuser may change a global error code")


def error_code_save(
    *, org_id: int | None, superuser: bool, fields: dict[str, Any], row: ErrorCode | None = None,
    make_global: bool = False,
) -> ErrorCode:  # fmt: skip
    """Create or update a rule. A new row belongs to the caller's organization, or is global when
    a superuser asks (``make_global``); an existing row keeps its owner."""
    if row is None:
        if make_global and not superuser:
            raise PermissionDenied("only a superuser may create a global error code")
        row = ErrorCode(organization_id=None if make_global else org_id)
    else:
        _may_change(row, org_id, superuser)
    for name, value in fields.items():
        setattr(row, name, value)
    if not row.error_code:
        raise ValidationError("error_code: required")
    if not row.regex and row.exit_code is None:
        raise ValidationError("regex or exit_code must be given")
    if row.regex and (problem := regex_problem(row.regex)):
        raise ValidationError(f"regex: {problem}")
    row.save()
    return row


def error_code_delete(*, row: ErrorCode, org_id: int | None, superuser: bool) -> None:
    _may_change(row, org_id, superuser)
    row.delete()
