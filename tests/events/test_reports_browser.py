"""The Reports page in a real browser (Debian's chromium through Playwright), after real runs."""

from pathlib import Path

import pytest

from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import wait_for_state
from tests.ui.test_browser import CHROMIUM, asgi_server, log_in, page, shot  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]

DEFINITION = """\
job_type: charted
required_params: [Code]
tasks:
- task_type: work
  method: SHELL
  script: ["exit {{.Code}}"]
"""


def test_reports_page_draws_charts_from_the_runs(page, api, alice):  # type: ignore[no-untyped-def]  # noqa: F811
    assert upload(api, DEFINITION).status_code == 201
    for code in ("0", "0", "1"):
        request = request_submit(
            org_id=alice.org_id, user=alice.user, job_type="charted", params={"Code": code}
        )
        wait_for_state(request.pk)
    log_in(page, "alice", "pw-alice")
    page.click("nav >> text=Reports")
    page.wait_for_url("**/reports")
    runs = page.locator('svg[data-chart="runs-per-day"] rect')
    assert runs.count() == 2  # today: a COMPLETED and a FAILED segment
    titles = [runs.nth(i).locator("title").text_content() for i in range(runs.count())]
    assert any(t.endswith("COMPLETED: 2") for t in titles) and any(t.endswith("FAILED: 1") for t in titles)
    assert page.locator('svg[data-chart="success-rate"] text', has_text="success 66.7%").count() == 1
    assert page.locator('svg[data-chart="durations"] rect').count() == 2  # p50 and p95 of charted
    assert page.locator("#failing-tasks td", has_text="work").count() == 1
    page.select_option("select[name=days]", "30")
    page.click("form.filters button")
    page.wait_for_url("**/reports?days=30")
    assert page.locator('svg[data-chart="runs-per-day"] rect').count() == 2
    shot(page, "20-reports")
