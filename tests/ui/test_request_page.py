"""The request page in a real browser (Debian's chromium through Playwright) against the
standalone product in threads (see test_browser.py): failures first, real durations and a live
clock, routed exit codes, pause/resume, attempts over restarts, and a log view that renders ANSI,
collapses ``\\r`` progress, styles stderr, searches, links lines and stays small on 200,000 lines.
Each test runs at desktop width and at 390 px.

``FORMICARY_SCREENSHOTS=1`` writes the request page's screenshots to docs/screenshots/.
"""

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobs.models import TaskExecution
from jobs.services.control import request_cancel, request_restart
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from tests.engine.harness import wait_for_state
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, SHOTS, asgi_server, log_in  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
]

WIDTHS = {"desktop": 1400, "phone": 390}

FAILING = r"""
job_type: colourful-fail
description: colours, progress, stderr, a routed exit code, then a failure
tasks:
- task_type: colours
  method: SHELL
  script:
    - printf '\033[32mgreen OK\033[0m and \033[1;31mbold red\033[0m\n'
    - printf 'progress 10%%\rprogress 55%%\rprogress 100%%\n'
    - echo "to stderr" >&2
  on_completed: check-date
- task_type: check-date
  method: SHELL
  script:
    - exit 2
  on_exit_code:
    2: tuesday
  on_completed: boom
- task_type: tuesday
  method: SHELL
  script:
    - echo "it is tuesday"
  on_completed: boom
- task_type: boom
  method: SHELL
  script:
    - echo "about to fail"
    - test -f /nonexistent/file
"""

SLOW = """
job_type: slow-clock
tasks:
- task_type: wait
  method: SHELL
  script:
    - echo waiting
    - sleep 60
"""


def _flaky(marker: str) -> str:
    return f"""
job_type: flaky-publish
tasks:
- task_type: publish
  method: SHELL
  script:
    - echo "published"
  on_completed: flaky
- task_type: flaky
  method: SHELL
  script:
    - if [ -f {marker} ]; then echo "second try"; else touch {marker}; echo "first try"; exit 1; fi
"""


@pytest.fixture(params=list(WIDTHS))
def page(request, asgi_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    width = WIDTHS[request.param]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": 900}, base_url=asgi_server,
                                      accept_downloads=True)  # fmt: skip
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        pg.on("dialog", lambda dialog: dialog.accept())
        pg.width_name = request.param
        yield pg
        context.close()
        browser.close()


def screenshot(page: Any, name: str) -> None:
    folder = ROOT / "docs" / "screenshots" if os.environ.get("FORMICARY_SCREENSHOTS") else SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"request-{name}-{page.width_name}.png"), full_page=True)


def no_page_overflow(page: Any) -> None:
    """Nothing of the request page reaches past the window (tables, graph and log scroll inside).
    Only checked once the layout around the page (base.html) gives it most of the window."""
    column = page.evaluate("document.querySelector('.request-page').getBoundingClientRect().width")
    if column < 0.75 * page.viewport_size["width"]:
        return
    wide = page.evaluate(
        """() => { const root = document.querySelector('.request-page'); const limit = window.innerWidth + 1;
             return [...root.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > limit
               && !e.closest('.table-scroll, pre.log, .graph')).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right).slice(0, 5); }"""
    )
    assert not wide, wide


def log_rows(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('pre.log .ln')].map(e => ({
             text: e.textContent, cls: e.className, html: e.innerHTML }))"""
    )


def test_a_failed_request_shows_the_failure_first_with_real_durations(page, alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=FAILING)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="colourful-fail")
    assert wait_for_state(request.pk, timeout=60).job_state == "FAILED"
    log_in(page, "alice", "pw-alice")
    page.goto(f"/jobs/requests/{request.pk}")
    # the events socket opens, yet a finished request is not "live"
    page.wait_for_function("window.formicaryPage && window.formicaryPage.socketOpen === true")
    assert page.locator(".live-indicator .txt").inner_text() == "finished"
    assert page.locator(".live-indicator .dot.live").count() == 0

    # failures first: the failed task, its exit code, the failing command and the error
    summary = page.locator("#failure-summary")
    assert "boom" in summary.inner_text()
    assert "exit code 1" in summary.inner_text()
    assert "test -f /nonexistent/file" in summary.locator(".failed-command").inner_text()
    # ...and the log opens on it
    page.wait_for_function("document.querySelector('.log-title').textContent === 'boom'")
    page.wait_for_function(
        "[...document.querySelectorAll('pre.log .ln')].some(e => e.textContent.includes('about to fail'))"
    )

    # seconds-precise durations for the request and every task that ran; never "0 minutes"
    body = page.locator("body").inner_text()
    assert "0 minutes" not in body
    assert re.search(r"ran \d+\.\d s", page.locator(".request-clock").inner_text())
    for task in ("colours", "check-date", "tuesday", "boom"):
        cell = page.locator(f'tr[data-task="{task}"] td.duration').inner_text()
        assert re.fullmatch(r"\d+\.\d s", cell), f"{task}: {cell!r}"

    # a declared exit code routes the graph: neutral, not a red FAILED
    badge = page.locator('tr[data-task="check-date"] .task-state')
    assert badge.inner_text() == "exit 2 → tuesday"
    assert "ROUTED" in badge.get_attribute("class") and "FAILED" not in badge.get_attribute("class")
    assert (
        page.evaluate(
            "[...document.querySelectorAll('.graph g.node')].find(g => g.querySelector('title').textContent === 'check-date')"
            ".getAttribute('data-state')"
        )
        == "ROUTED"
    )

    # ANSI colours as spans, \r progress collapsed to its last state, stderr styled
    page.click('.log-tabs button[data-task="colours"]')
    page.wait_for_function(
        "[...document.querySelectorAll('pre.log .ln')].some(e => e.textContent.includes('green OK'))"
    )
    rows = [r for r in log_rows(page) if "system" not in r["cls"].split()]  # not the echoed commands
    green = next(r for r in rows if "green OK" in r["text"])
    assert '<span class="fg2">green OK</span>' in green["html"]
    assert '<span class="fg1 b">bold red</span>' in green["html"]
    assert "\x1b" not in green["text"] and "[32m" not in green["text"]
    progress = [r["text"] for r in rows if "progress" in r["text"]]
    assert len(progress) == 1 and progress[0].endswith("progress 100%"), progress
    # a line the script printed to stderr is its own stream, styled apart
    page.wait_for_function(
        "[...document.querySelectorAll('pre.log .ln.stderr')].some(e => e.textContent.endsWith('to stderr'))"
    )
    assert not any(r["text"].endswith("to stderr") for r in rows if "stderr" not in r["cls"].split())
    screenshot(page, "failed")

    # the timeline tab: one bar per task that ran, wait and run
    page.click("#timeline-tab")
    assert page.locator("#timeline .tl-row").count() == 4
    assert page.locator("#timeline .tl-run.ROUTED").count() == 1
    assert page.locator("#timeline .tl-run.FAILED").count() == 1
    screenshot(page, "timeline")

    # search highlights and counts; a line link opens the page on that line of that task
    page.fill("#log-search", "OK and")  # across two colours; the echoed command does not match
    page.wait_for_function("document.querySelector('.search-count').textContent === '1 of 1'")
    assert page.locator("pre.log mark", has_text="OK and").count() == 1
    page.click("#log-timestamps")
    page.locator("pre.log .ln a.n").nth(1).click()
    assert page.url.endswith("?task=colours&attempt=1#L2")
    page.goto(page.url)
    page.wait_for_function("document.querySelector('pre.log .ln.target') !== null")
    assert page.locator("pre.log .ln.target").get_attribute("data-n") == "2"
    assert page.locator(".log-title").inner_text() == "colours"
    # raw and download of one task's log
    raw = page.request.get(page.locator("#log-raw").get_attribute("href"))
    assert raw.ok and "green OK" in raw.text()
    with page.expect_download() as info:
        page.click("#log-download")
    assert info.value.suggested_filename == f"colourful-fail-{request.pk}-colours-attempt1.log"
    # full screen covers the window
    page.click("#log-fullscreen")
    box = page.locator("#log-panel").bounding_box()
    assert box["width"] >= page.viewport_size["width"] - 1 and box["y"] == 0
    page.keyboard.press("Escape")
    no_page_overflow(page)


def test_a_running_request_ticks_and_a_paused_one_offers_resume(page, alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=SLOW)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="slow-clock")
    log_in(page, "alice", "pw-alice")
    page.goto(f"/jobs/requests/{request.pk}")
    page.wait_for_function("document.querySelector('.live-indicator .txt').textContent === 'live'")
    page.wait_for_function(
        "/running \\d+\\.\\d s/.test(document.querySelector('.request-clock').textContent)"
    )
    first = page.locator(".request-clock").inner_text()
    page.wait_for_function(f"document.querySelector('.request-clock').textContent !== {first!r}")
    page.wait_for_function(
        "document.querySelector('tr[data-task=\"wait\"] .task-state').textContent === 'EXECUTING'"
    )
    page.wait_for_function(
        "/\\d+\\.\\d s/.test(document.querySelector('tr[data-task=\"wait\"] td.duration').textContent)"
    )
    screenshot(page, "running")

    # paused: Resume (not Restart) is offered; the task still on its ant says so honestly
    page.click("#pause-request")
    page.wait_for_selector("#resume-request")
    assert page.locator("#restart-request").count() == 0
    state = TaskExecution.objects.get(job_execution__job_request=request, task_type="wait").task_state
    label = page.locator('tr[data-task="wait"] .task-state').inner_text()
    if state == "EXECUTING":
        assert label == "running (job paused)"
    else:
        assert label == state
    page.click("#resume-request")
    page.wait_for_selector("#pause-request")
    request_cancel(request=request)
    page.wait_for_function("document.querySelector('.live-indicator .txt').textContent === 'finished'")
    assert page.locator(".live-indicator .dot.live").count() == 0
    assert wait_for_state(request.pk).job_state == "CANCELLED"


def test_every_attempt_is_kept_with_its_log_and_artifacts(page, alice, tmp_path):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=_flaky(str(tmp_path / "marker")))
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="flaky-publish")
    assert wait_for_state(request.pk, timeout=60).job_state == "FAILED"
    first_publish = TaskExecution.objects.get(job_execution__job_request=request, task_type="publish")
    log_in(page, "alice", "pw-alice")
    page.goto(f"/jobs/requests/{request.pk}")
    page.click("#restart-request")  # "Re-run failed": a soft restart reuses publish
    assert wait_for_state(request.pk, ["COMPLETED"], timeout=60).job_state == "COMPLETED"
    page.goto(f"/jobs/requests/{request.pk}")
    # the reused task keeps the times of the run that really ran it
    assert page.locator('tr[data-task="publish"] .task-state').inner_text() == "COMPLETED (reused)"
    state = page.request.get(f"/jobs/requests/{request.pk}/page.json").json()
    publish = next(t for t in state["tasks"] if t["task_type"] == "publish")
    assert publish["started_at"] == first_publish.started_at.isoformat()
    assert publish["ended_at"] == first_publish.ended_at.isoformat()
    request_restart(request=wait_for_state(request.pk), hard=True)  # "Re-run all"
    assert wait_for_state(request.pk, ["COMPLETED"], timeout=60).job_state == "COMPLETED"
    page.goto(f"/jobs/requests/{request.pk}")

    # flaky ran three times: each attempt selectable with its own log
    page.click('.log-tabs button[data-task="flaky"]')
    page.wait_for_function(
        "document.querySelector('.attempt-label').textContent.startsWith('attempt 3 of 3')"
    )
    page.wait_for_function(
        "[...document.querySelectorAll('pre.log .ln')].some(e => e.textContent.endsWith('second try'))"
    )
    page.select_option("#attempt-select", "1")
    page.wait_for_function(
        "document.querySelector('.attempt-label').textContent.startsWith('attempt 1 of 3')"
    )
    page.wait_for_function(
        "[...document.querySelectorAll('pre.log .ln')].some(e => e.textContent.endsWith('first try'))"
    )
    assert not any(r["text"].endswith("second try") for r in log_rows(page))
    options = page.locator("#attempt-select option").all_inner_texts()
    assert [o.split(" (")[0] for o in options] == ["attempt 1 of 3", "attempt 2 of 3", "attempt 3 of 3"]
    assert "run 1, FAILED exit 1" in options[0] and "run 3, COMPLETED" in options[2]
    # the two publish.log artifacts (the task's log, stored per run) name their run
    runs = (
        page.locator("#request-artifacts tr", has_text="publish.log")
        .locator("td.artifact-run")
        .all_inner_texts()
    )
    assert sorted(runs) == ["run 1, attempt 1", "run 3, attempt 1"]
    screenshot(page, "attempts")
    # re-run with new params: a form pre-filled from this run
    page.click("#rerun-params-toggle")
    assert page.locator("#rerun-params").is_visible()
    no_page_overflow(page)


def _retrying(marker: str) -> str:
    return f"""
job_type: retrying
tasks:
- task_type: flaky
  method: SHELL
  retry: 2
  delay_between_retries: 0
  script:
    - if [ -f {marker} ]; then echo "retry worked"; else touch {marker}; echo "first go" >&2; exit 3; fi
"""


def test_a_retry_within_one_run_keeps_the_first_attempts_times_and_exit_code(page, alice, tmp_path):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=_retrying(str(tmp_path / "marker")))
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="retrying")
    assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED"
    log_in(page, "alice", "pw-alice")
    page.goto(f"/jobs/requests/{request.pk}")
    state = page.request.get(f"/jobs/requests/{request.pk}/page.json").json()
    first, second = next(t for t in state["tasks"] if t["task_type"] == "flaky")["attempts"]
    assert (first["run"], first["state"], first["exit_code"]) == (1, "FAILED", "3")
    assert (second["run"], second["state"], second["exit_code"]) == (1, "COMPLETED", "0")
    assert first["started_at"] and first["ended_at"] and first["ended_at"] <= second["started_at"]
    assert re.fullmatch(r"\d+\.\d s", first["duration"])
    page.click('.log-tabs button[data-task="flaky"]')
    page.wait_for_function(
        "document.querySelector('.attempt-label').textContent.startsWith('attempt 2 of 2')"
    )
    page.select_option("#attempt-select", "1")
    page.wait_for_function(
        "[...document.querySelectorAll('pre.log .ln')].some(e => e.textContent.endsWith('first go'))"
    )
    option = page.locator("#attempt-select option").first.inner_text()
    assert "run 1, FAILED exit 3" in option and re.search(r"\d+\.\d s\)$", option), option
    # each attempt's log artifact names its attempt
    origins = (
        page.locator("#request-artifacts tr", has_text="flaky.log")
        .locator("td.artifact-run")
        .all_inner_texts()
    )
    assert sorted(origins) == ["attempt 1", "attempt 2"]


def test_a_200000_line_log_stays_small_in_the_dom(page, alice):  # type: ignore[no-untyped-def]
    """200,000 lines published on the log transport as an ant streams them (a SHELL ant printing
    them in this threaded harness starves its own heartbeat on a 2-core machine)."""
    from ants.protocol import LogLine
    from jobs.domain import messaging
    from jobs.domain.logs import task_log_text

    lines = 200_000
    definition_upload(org_id=alice.org_id, user=alice.user, text=SLOW.replace("sleep 60", "sleep 2"))
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="slow-clock")
    task = None
    deadline = time.monotonic() + 30
    while task is None or task.task_state != "EXECUTING":
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.1)
        task = TaskExecution.objects.filter(job_execution__job_request=request).first()
    transport = messaging.get_transport()
    for start in range(0, lines, 10_000):
        transport.publish_logs([
            LogLine(task_execution_id=task.pk, job_request_id=request.pk, attempt=task.attempt, seq=1000 + n,
                    stream="stdout", line=f"log line number {n}")
            for n in range(start + 1, start + 10_001)
        ])  # fmt: skip
    assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED"
    while task_log_text(task.pk).count("\n") < lines:  # the log writer stores them in batches
        assert time.monotonic() < deadline + 60, "the lines were not stored"
        time.sleep(0.5)
    log_in(page, "alice", "pw-alice")
    page.goto(f"/jobs/requests/{request.pk}")
    start = time.monotonic()
    page.wait_for_function(
        f"window.formicaryLogLoaded && window.formicaryLogLoaded.lines >= {lines}", timeout=120_000
    )
    loaded = page.evaluate("window.formicaryLogLoaded")
    first_paint = page.evaluate("performance.now()")  # load finished: the rows are drawn on the next frame
    scroll_ms = page.evaluate(
        """() => new Promise(done => { const pre = document.querySelector('pre.log'); const t0 = performance.now();
             pre.scrollTop = pre.scrollHeight;
             requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0))); })"""
    )
    page.wait_for_function(
        f"[...document.querySelectorAll('pre.log .ln')].some(e => e.textContent.endsWith('log line number {lines}'))"
    )
    rows = page.evaluate("document.querySelectorAll('pre.log .ln').length")
    assert rows < 200, f"{rows} log rows in the DOM"
    search_ms = page.evaluate(
        """() => { const t0 = performance.now(); window.formicaryPage.log.search('number 123456');
             return performance.now() - t0; }"""
    )
    page.wait_for_function("document.querySelectorAll('pre.log mark').length === 1")
    figures = {"width": page.viewport_size["width"], "lines": loaded["lines"], "load_ms": round(loaded["ms"]),
               "page_ms": round(first_paint), "scroll_ms": round(scroll_ms), "search_ms": round(search_ms),
               "dom_rows": rows, "wall_s": round(time.monotonic() - start, 1)}  # fmt: skip
    (ROOT / "test-output").mkdir(exist_ok=True)
    with open(ROOT / "test-output" / "log-200k.txt", "a") as out:
        out.write(f"{figures}\n")
    print("200,000-line log:", figures)
