"""The Triggers tab of the definition page in a real browser (Debian's chromium through
Playwright): recent firings, the request a firing started, and why an event was filtered."""

from pathlib import Path

import pytest

from tests.triggers.conftest import SECRET, define
from tests.triggers.test_webhook_api import HOOK, post
from tests.ui.test_browser import CHROMIUM, asgi_server, log_in, page, shot  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


def test_triggers_tab_shows_firings_and_why_an_event_was_filtered(page, api, anon_api):  # noqa: F811
    definition = define(api, HOOK, {"HookSecret": SECRET})
    fired = post(anon_api, {"action": "opened", "number": 5}).json()["request_id"]
    assert post(anon_api, {"action": "closed", "number": 6}).status_code == 202
    log_in(page, "alice", "pw-alice")
    page.goto(f"/jobs/definitions/{definition['id']}")
    panel = page.locator("#triggers")
    panel.wait_for()
    assert panel.locator(".tabs a").all_inner_texts() == ["push webhook", "token webhook", "key webhook"]
    push = panel.locator("[data-trigger=push]")
    assert "POST /api/triggers/hooked/push" in push.inner_text()
    filtered = push.locator("tr.firing.filtered")
    assert "filter rendered 'false', not 'true'" in filtered.locator(".reason").inner_text()
    push.locator("tr.firing.fired a").click()
    page.wait_for_url(f"**/jobs/requests/{fired}")
    page.go_back()
    panel.wait_for()
    shot(page, "triggers-tab")
    assert "No events yet." in panel.locator("[data-trigger=token]").inner_text()
