"""Shared pieces of the UI browser tests: a Chromium per module, pages logged in by session
cookie at a chosen width and colour scheme, and a small world of data to look at."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS

DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

DEFINITION = """\
job_type: ui-job
description: two quick tasks
required_params: [Branch]
job_variables:
  Region: eu
tasks:
- task_type: build
  method: SHELL
  script:
    - echo building {{.Branch | shellquote}} in {{.Region}}
    - echo {{if .Verbose}}verbose{{end}} {{ .Target | shellquote }}
  on_completed: test
- task_type: test
  method: SHELL
  script:
    - echo testing
"""


@pytest.fixture
def chromium(asgi_server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def session_cookie(user: Any) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def open_page(browser: Any, base_url: str, user: Any = None, *, viewport: dict[str, int] = DESKTOP,
              scheme: str = "light") -> Any:  # fmt: skip
    """A new context and page; logged in as ``user`` when given."""
    context = browser.new_context(viewport=viewport, base_url=base_url, color_scheme=scheme)
    if user is not None:
        host = base_url.split("://", 1)[1].split(":")[0]
        context.add_cookies(
            [{"name": "sessionid", "value": session_cookie(user), "domain": host, "path": "/"}]
        )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def page_overflow(page: Any) -> int:
    """How many pixels the document is wider than the viewport (0 when it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def seed(member: Any) -> dict[str, Any]:
    """Two versions of a definition and one request: enough to fill every main page."""
    from jobs.services.definitions import definition_upload
    from jobs.services.requests import request_submit

    first, _ = definition_upload(org_id=member.org_id, user=member.user, text=DEFINITION)
    second, _ = definition_upload(
        org_id=member.org_id, user=member.user, text=DEFINITION.replace("echo testing", "echo testing again")
    )
    request = request_submit(
        org_id=member.org_id, user=member.user, job_type="ui-job", params={"Branch": "main"}
    )
    return {"first": first, "second": second, "request": request}


def main_pages(world: dict[str, Any]) -> list[str]:
    return ["/", "/jobs/requests", "/jobs/definitions", f"/jobs/definitions/{world['second'].pk}",
            "/jobs/definitions/upload", "/ants", "/artifacts", "/errors", "/account", "/account/members",
            "/account/audit"]  # fmt: skip
