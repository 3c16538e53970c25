"""The Reports page: the numbers of jobs/reports.py drawn as inline SVG."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import ValidationError

from jobs import reports
from jobs.ui import charts
from jobs.ui.views import _org_id, member_required


@member_required
def reports_page(request: HttpRequest) -> HttpResponse:
    try:
        days = reports.days_param(request.GET.get("days"))
    except ValidationError as exc:
        return HttpResponse(str(exc.detail["days"][0]), status=400, content_type="text/plain")  # type: ignore[index,call-overload]  # days_param: {"days": [message]}
    data = reports.report(_org_id(request), days=days)
    types = data["job_types"]
    context = {
        "report": data,
        "days": days,
        "runs_chart": charts.runs_per_day(data["runs_per_day"]),
        "duration_chart": charts.horizontal_bars(
            "durations",
            [
                (t["job_type"], [("p50", t["p50_secs"], "#3b7dd8"), ("p95", t["p95_secs"], "#1d4f91")])
                for t in types
            ],
            "s",
        ),  # fmt: skip
        "success_chart": charts.horizontal_bars(
            "success-rate",
            [
                (
                    t["job_type"],
                    [
                        (
                            "success",
                            None if t["success_rate"] is None else round(t["success_rate"] * 100, 1),
                            "#2e9d5b",
                        )
                    ],
                )
                for t in types
            ],
            "%",
        ),  # fmt: skip
        "states": charts.STATE_COLORS,
    }
    return render(request, "jobs/reports.html", context)
