# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""The requests list and the dashboard: an "All" tab first, rows that say how long, who and with
what, and updates over the request event sockets without a reload; the ants page's methods."""

import pytest

from jobs.models import JobRequest
from tests.engine.harness import wait_for_state
from tests.ui.browser_kit import PHONE, chromium, open_page, page_overflow, seed  # noqa: F401
from tests.ui.test_browser import SLOW_DEFINITION, asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]


def _row(page, request_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f"tr[data-live-request='{request_id}']")


@pytest.mark.parametrize("viewport", [None, PHONE])
def test_requests_open_on_all_with_duration_trigger_params_and_task_strip(
    chromium, asgi_server, alice, viewport
):  # type: ignore[no-untyped-def]
    world = seed(alice)
    request = world["request"]
    wait_for_state(request.pk)
    page = open_page(chromium, asgi_server, alice.user, **({"viewport": viewport} if viewport else {}))
    page.goto("/jobs/requests")
    assert page.locator(".tabs a.active").inner_text().startswith("All")
    row = _row(page, request.pk)
    assert row.locator(".badge").inner_text() == "COMPLETED"
    assert row.locator(".trigger").inner_text() == "alice"
    assert "Branch=main" in row.locator(".params").inner_text()
    assert row.locator(".strip i.COMPLETED").count() == 2  # build and test
    duration = row.locator(".duration").inner_text()
    assert duration.endswith("s") and duration != "—"
    assert page_overflow(page) <= 0


def test_the_list_and_the_dashboard_follow_a_request_live(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    from jobs.services import control
    from jobs.services.definitions import definition_upload
    from jobs.services.requests import request_submit

    definition_upload(org_id=alice.org_id, user=alice.user, text=SLOW_DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="slow-job")
    listing = open_page(chromium, asgi_server, alice.user)
    dashboard = open_page(chromium, asgi_server, alice.user, scheme="dark")
    listing.goto("/jobs/requests")
    dashboard.goto("/")
    # the task starting reaches both pages over the request's event socket
    for page in (listing, dashboard):
        page.wait_for_function(
            f"document.querySelector(\"tr[data-live-request='{request.pk}'] .strip i.EXECUTING\") !== null",
            timeout=15_000,
        )
    assert dashboard.locator("#count-running").inner_text() == "1"
    refreshes = listing.evaluate("window.formicaryLive.refreshes")
    control.request_cancel(request=JobRequest.objects.get(pk=request.pk))
    for page in (listing, dashboard):
        page.wait_for_function(
            f"document.querySelector(\"tr[data-live-request='{request.pk}'] .badge\").textContent === 'CANCELLED'",
            timeout=15_000,
        )
    dashboard.wait_for_function("document.querySelector('#count-running').textContent.trim() === '0'")
    assert listing.evaluate("window.formicaryLive.refreshes") > refreshes
    # a finished request is no longer watched
    listing.wait_for_function("Object.keys(window.formicaryLive.sockets).length === 0")


def test_the_ants_page_shows_each_ants_methods_and_standalone_offers_docker(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    from ants.models import AntRegistration
    from jobs.management.commands.standalone import docker_reachable, local_ant_methods

    # the test machine has a Docker engine (the shared one the suite uses)
    assert docker_reachable()
    methods = local_ant_methods(docker=docker_reachable())
    assert "DOCKER" in methods and "SHELL" in methods
    assert "DOCKER" not in local_ant_methods(docker=False)
    page = open_page(chromium, asgi_server, alice.user)
    page.goto("/ants")
    row = page.locator("tr", has_text="ant-browser")
    shown = row.locator(".methods .tag").all_inner_texts()
    assert shown == list(AntRegistration.objects.get(ant_id="ant-browser").methods)
    assert "SHELL" in shown
