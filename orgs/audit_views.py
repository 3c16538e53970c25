"""The audit page: the organization's records (every one for a superuser), with the API's filters."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from orgs.audit_filters import FILTERS, AuditFilterError, filter_records
from orgs.web_permissions import requires

PAGE_SIZE = 50


@login_required
@requires("Audit:Read")
def audit_list(request: HttpRequest) -> HttpResponse:
    values = {name: request.GET.get(name, "").strip() for name in FILTERS}
    error, status = "", 200
    try:
        qs = filter_records(request.user, request.GET)
    except AuditFilterError as exc:
        qs, error, status = filter_records(request.user, {}), str(exc), 400
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = "".join(f"{name}={value}&" for name, value in values.items() if value)
    context = {"page": page, "f": values, "error": error, "query": query}
    return render(request, "orgs/audit_list.html", context, status=status)
