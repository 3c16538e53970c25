"""The Usage page: the numbers of ``/api/orgs/usage_report`` (the caller's organization; a
superuser's cover every organization) with the plan's limits beside them."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import ValidationError

from orgs.authed import AuthedHttpRequest
from orgs.usage_api import report_for, report_window
from orgs.web_permissions import requires


@login_required
@requires("Subscription:Read")
def usage_page(request: AuthedHttpRequest) -> HttpResponse:
    values = {name: request.GET.get(name) for name in ("from", "to")}
    try:
        start, end = report_window(values)
    except ValidationError as exc:
        detail = "; ".join(f"{name}: {msgs[0]}" for name, msgs in exc.detail.items())  # type: ignore[union-attr,index]  # report_window: {field: [message]}
        return HttpResponse(detail, status=400, content_type="text/plain")
    report = report_for(request.user, start, end)
    return render(request, "orgs/usage.html", {"report": report, "values": values})
