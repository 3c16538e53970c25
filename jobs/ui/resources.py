"""The job resources page: each resource of the organization with its quota, configs (secret
values masked) and live leases (docs/resources.md). Changes go through the API or the admin."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.services.resources import resources_of
from jobs.ui.views import PAGE_SIZE, _org_id, member_required
from orgs.web_permissions import requires


@member_required
@requires("JobResource:Read")
def resource_list(request: HttpRequest) -> HttpResponse:
    qs = resources_of(_org_id(request))
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        (
            r,
            sum(u.value for u in r.live_uses),  # type: ignore[attr-defined]  # a Prefetch's to_attr
            [(c.name, c.display_value()) for c in r.configs.all()],
        )
        for r in page
    ]
    return render(request, "jobs/resource_list.html", {"page": page, "rows": rows})
