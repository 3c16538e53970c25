"""Parallel work in a real browser (Debian's chromium through Playwright): a fan-out step drawn
with its instances and their states, moving live as instances change state through
``jobs.domain.transitions`` and the events socket, and the timeline where overlapping tasks and
instances show as overlapping bars.

The web server runs in a thread with Channels and the in-process transport but no queen: the
instances are stored as the fan-out engine stores them (tests/ui/fan_out_world.py) and moved by
the test, so no queen may dispatch them meanwhile.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from ants.messaging import InProcessTransport
from jobs.domain import transitions
from jobs.models import TaskExecution
from jobs.states import TaskState
from tests.conftest import served_site
from tests.ui.browser_kit import PHONE, open_page, page_overflow
from tests.ui.fan_out_world import fan_out_request, finish, start
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="chromium is not installed"),
]


@pytest.fixture
def web(transactional_db, settings, monkeypatch, use_transport) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """uvicorn with the project's ASGI app in a thread; events reach pages through the in-memory layer."""

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "formicary_site.channel_layers.ThreadSafeInMemoryChannelLayer"}
    }
    use_transport(InProcessTransport())
    with served_site() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser(web: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def chip_states(page: Any) -> list[tuple[str, str]]:
    return [
        tuple(pair)
        for pair in page.evaluate(
            "[...document.querySelectorAll('.fan-out[data-step=\"deploy\"] .fo-chip')]"
            ".map(c => [c.getAttribute('data-task'), c.getAttribute('data-state')])"
        )
    ]


def live(page: Any) -> None:
    """The events socket is open and the page marked, so a reload would show."""
    page.wait_for_function("window.formicaryPage && window.formicaryPage.socketOpen === true")
    page.evaluate("window.sameDocument = true")


def test_the_graph_draws_a_fan_out_with_its_instances_live(browser, web, alice):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=4)
    rid, (i0, i1, i2, _) = world.request.pk, world.instances
    finish(i0, rid, TaskState.COMPLETED)
    finish(i1, rid, TaskState.FAILED, exit_code="3")
    start(i2, rid)
    page = open_page(browser, web, alice.user)
    page.goto(f"/jobs/requests/{rid}")
    page.wait_for_selector(".fan-out[data-step='deploy'] .fo-chip")
    live(page)

    # each instance a chip coloured by its state, under its step; none is a task of its own
    assert chip_states(page) == [
        ("deploy-fo-0", "COMPLETED"), ("deploy-fo-1", "FAILED"), ("deploy-fo-2", "EXECUTING"), ("deploy-fo-3", "READY"),
    ]  # fmt: skip
    assert "st-FAILED" in page.locator(".fo-chip[data-index='1']").get_attribute("class")
    counts = page.locator(".fan-out[data-step='deploy'] .fo-counts").inner_text()
    for text in ("1 completed", "1 failed", "1 executing", "1 ready"):
        assert text in counts, counts
    assert page.locator("tr[data-task^='deploy-fo-']").count() == 0
    assert page.locator(".log-tabs button[data-task^='deploy-fo-']").count() == 0
    titles = page.evaluate("[...document.querySelectorAll('.graph g.node title')].map(t => t.textContent)")
    assert sorted(titles) == ["deploy", "list", "report"]
    # the step's node in the graph counts its instances
    assert (
        page.evaluate(
            "[...document.querySelectorAll('.graph g.node')].find(g => g.querySelector('title').textContent === 'deploy')"
            ".getAttribute('data-fan-out')"
        )
        == "4 items: 1 done, 2 running, 1 failed"
    )

    # live: instances change state through the one door and the page follows without a reload
    finish(i2, rid, TaskState.COMPLETED)
    page.wait_for_function(
        "document.querySelector('.fo-chip[data-index=\"2\"]').getAttribute('data-state') === 'COMPLETED'"
    )
    start(world.instances[3], rid)
    page.wait_for_function(
        "document.querySelector('.fo-chip[data-index=\"3\"]').getAttribute('data-state') === 'EXECUTING'"
    )
    page.wait_for_function(
        "document.querySelector('.fan-out[data-step=\"deploy\"] .fo-counts').textContent.includes('2 completed')"
    )
    assert page.evaluate("window.sameDocument") is True

    # a chip opens the instance's log
    page.click(".fo-chip[data-index='1']")
    page.wait_for_function("document.querySelector('.log-title').textContent === 'deploy-fo-1'")
    assert f"/tasks/{i1}/log.txt?attempt=1" in page.locator("#log-raw").get_attribute("href")
    assert "selected" in page.locator(".fo-chip[data-index='1']").get_attribute("class")
    page.screenshot(path=str(SHOTS / "request-fan-out.png"), full_page=True)


def test_a_thousand_instances_draw_200_chips_and_count_the_rest(browser, web, alice):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=1000)
    rid = world.request.pk
    transitions.tasks_dispatch("ant-ui", {pk: rid for pk in world.instances[:600]})
    page = open_page(browser, web, alice.user)
    page.goto(f"/jobs/requests/{rid}")
    page.wait_for_selector(".fan-out[data-step='deploy'] .fo-chip")
    assert page.locator(".fo-chip").count() == 200
    assert page.locator(".fan-out .fo-more").inner_text() == "+800 more"
    assert page.locator(".fan-out .fo-total").inner_text() == "1000 items"
    counts = page.locator(".fan-out .fo-counts").inner_text()
    assert "600 started" in counts and "400 ready" in counts, counts
    # on a phone the chips wrap inside the page
    phone = open_page(browser, web, alice.user, viewport=PHONE)
    phone.goto(f"/jobs/requests/{rid}/timeline")
    phone.wait_for_selector("#timeline .tl-lane")
    assert phone.locator("#timeline .tl-lane").count() == 200
    assert phone.locator("#timeline .tl-lanes .tl-more").inner_text() == "+800 more"
    phone.click("#graph-tab")
    phone.wait_for_selector(".fo-chip")
    assert page_overflow(phone) == 0


def _set_times(task_id: int, started_ago: float, ended_ago: float | None) -> None:
    """Test setup: the times a run would have left (a linear graph's tasks never overlap)."""
    now = timezone.now()
    ended = now - timedelta(seconds=ended_ago) if ended_ago is not None else None
    TaskExecution.objects.filter(pk=task_id).update(
        started_at=now - timedelta(seconds=started_ago), ended_at=ended
    )


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]


def test_the_timeline_shows_overlapping_work_live(browser, web, alice):  # type: ignore[no-untyped-def]
    world = fan_out_request(alice, items=3)
    rid, (i0, i1, i2) = world.request.pk, world.instances
    first = TaskExecution.objects.get(job_execution=world.execution, task_type="list").pk
    start(i0, rid)
    start(i1, rid)
    _set_times(first, 30, 10)  # list ran from -30 s to -10 s ...
    _set_times(world.step.pk, 20, None)  # ... and deploy from -20 s on: they overlap
    _set_times(i0, 18, None)
    _set_times(i1, 15, None)
    world.execution.__class__.objects.filter(pk=world.execution.pk).update(
        started_at=timezone.now() - timedelta(seconds=31)
    )
    page = open_page(browser, web, alice.user)
    page.goto(f"/jobs/requests/{rid}/timeline")  # its own address opens on the timeline
    page.wait_for_selector("#timeline .tl-row[data-task='deploy']")
    live(page)
    assert page.locator("[data-view-pane='graph']").is_hidden()

    list_bar = _box(page, "#timeline .tl-row[data-task='list'] .tl-run")
    deploy_bar = _box(page, "#timeline .tl-row[data-task='deploy'] .tl-run")
    assert _overlap(list_bar, deploy_bar) and list_bar["y"] < deploy_bar["y"], (list_bar, deploy_bar)
    lane0 = _box(page, "#timeline .tl-lane[data-task='deploy-fo-0'] .tl-run")
    lane1 = _box(page, "#timeline .tl-lane[data-task='deploy-fo-1'] .tl-run")
    assert _overlap(lane0, lane1) and lane0["y"] < lane1["y"]
    assert page.locator("#timeline .tl-lane").count() == 2  # the third has not started

    # the clock redraws running bars every second in place: a bar a click or hover is on stays
    deploy = "#timeline .tl-row[data-task='deploy']"
    page.evaluate(
        f'window.kept = document.querySelector("{deploy} .tl-run"); '
        f'window.keptText = document.querySelector("{deploy} .tl-text").textContent'
    )
    page.wait_for_function(f'document.querySelector("{deploy} .tl-text").textContent !== window.keptText')
    assert page.evaluate(
        f'window.kept.isConnected && window.kept === document.querySelector("{deploy} .tl-run")'
    )

    # live: an instance ends and another starts
    finish(i1, rid, TaskState.FAILED, exit_code="1")
    page.wait_for_selector("#timeline .tl-lane[data-task='deploy-fo-1'] .tl-run.FAILED")
    start(i2, rid)
    page.wait_for_selector("#timeline .tl-lane[data-task='deploy-fo-2'] .tl-run.EXECUTING")
    assert page.evaluate("window.sameDocument") is True
    page.screenshot(path=str(SHOTS / "request-fan-out-timeline.png"), full_page=True)

    # a lane opens its instance's log
    page.click("#timeline .tl-lane[data-task='deploy-fo-0']")
    page.wait_for_function("document.querySelector('.log-title').textContent === 'deploy-fo-0'")

    # the tabs keep the address: the graph is the request's page, the timeline its /timeline
    page.click("#graph-tab")
    assert page.url.endswith(f"/jobs/requests/{rid}")
    page.click("#timeline-tab")
    assert page.url.endswith(f"/jobs/requests/{rid}/timeline")
