# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""The Usage page in Chromium, after a real run (a queen and a SHELL ant in threads): the
organization's jobs, tasks, CPU seconds, cost and storage, per job type, with the plan; the
date filter; and the submit form refused over the plan's CPU quota."""

from datetime import timedelta

import pytest
from django.utils import timezone

from artifacts.models import Artifact
from jobs.models import TaskExecution
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs import services
from orgs.models import Subscription
from tests.engine.harness import wait_for_state
from tests.ui.browser_kit import chromium, open_page  # noqa: F401
from tests.ui.test_browser import asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]

SLEEPER = "job_type: usage-sleep\ntasks:\n- task_type: nap\n  method: SHELL\n  script: ['sleep 1']\n"


def test_usage_page_shows_the_runs_figures_and_the_plan(chromium, asgi_server, alice, bob):  # type: ignore[no-untyped-def]
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=SLEEPER)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="usage-sleep")
    assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED"
    plan = services.subscription_save(
        Subscription(organization_id=alice.org_id),
        {
            "policy": "BASIC",
            "cost_factor": 3.0,
            "cpu_quota": 1,
            "started_at": timezone.now() - timedelta(days=1),
        },
    )
    cpu = TaskExecution.objects.get(job_execution__job_request=request).cpu_secs
    assert cpu >= 1.0
    stored = sum(Artifact.objects.filter(organization_id=alice.org_id).values_list("size", flat=True))

    page = open_page(chromium, asgi_server, alice.user)
    page.goto("/")
    page.locator("nav a", has_text="Usage").click()
    page.wait_for_url("**/usage")
    org = page.locator(f"#usage-org-{alice.org_id}")
    totals = {f: org.locator(f".usage-totals [data-field={f}]").inner_text() for f in
              ("jobs", "tasks", "cpu_secs", "cost", "storage_bytes")}  # fmt: skip
    assert totals["jobs"] == "1" and totals["tasks"] == "1"
    assert float(totals["cpu_secs"]) == pytest.approx(cpu, abs=0.001)
    assert float(totals["cost"]) == pytest.approx(cpu * 3.0, abs=0.001)
    assert int(totals["storage_bytes"]) == stored > 0
    row = org.locator("tr[data-job-type='usage-sleep'] td")
    assert row.nth(0).inner_text() == "usage-sleep" and row.nth(1).inner_text() == "1"
    assert (
        "BASIC" in org.locator(".plan").inner_text()
        and f"of {plan.cpu_quota}" in org.locator(".plan").inner_text()
    )
    assert page.locator(".usage-org").count() == 1  # not bob's organization

    page.fill("input[name=from]", "2000-01-01")
    page.fill("input[name=to]", "2000-01-31")
    page.locator(".filters button").click()
    page.wait_for_url("**/usage?from=2000-01-01&to=2000-01-31")
    assert org.locator(".usage-totals [data-field=jobs]").inner_text() == "0"
    # storage is what is stored now, whatever the window
    assert [row.nth(i).inner_text() for i in (1, 2, 5)] == ["0", "0", str(stored)]

    # the submit form over the CPU quota says which limit and how much was used
    page.goto(f"/jobs/definitions/{definition.pk}")
    page.locator("#submit-form button[type=submit]").click()
    errors = page.locator("#submit-errors").inner_text()
    assert "the BASIC plan's cpu_quota is 1" in errors and f"used {cpu:.1f} CPU seconds" in errors
