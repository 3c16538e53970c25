# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""axe-core (shipped inside axe-playwright-python, no network) finds no serious or critical
violation on the main pages, light and dark, desktop and phone; every control is reachable by
keyboard and every button has a name."""

from typing import Any

import pytest

from tests.ui.browser_kit import PHONE, chromium, open_page, seed  # noqa: F401
from tests.ui.test_browser import asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]


def _pages(world: dict[str, Any]) -> list[str]:
    return ["/", "/jobs/requests", "/jobs/definitions", f"/jobs/definitions/{world['second'].pk}",
            "/jobs/definitions/upload", "/ants", "/account"]  # fmt: skip


def _serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(
    ("scheme", "viewport"), [("light", None), ("dark", None), ("light", PHONE), ("dark", PHONE)]
)
def test_axe_finds_no_serious_violation(chromium, asgi_server, alice, scheme, viewport):  # type: ignore[no-untyped-def]
    world = seed(alice)
    page = open_page(
        chromium, asgi_server, alice.user, scheme=scheme, **({"viewport": viewport} if viewport else {})
    )
    found = {}
    for path in _pages(world):
        page.goto(path)
        if problems := _serious(page):
            found[path] = problems
    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())


def test_buttons_are_named_and_reachable_by_keyboard(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user, viewport=PHONE)
    page.goto("/")
    # the first Tab lands on the menu button, Enter opens the navigation
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "menu-toggle"
    page.keyboard.press("Enter")
    assert page.locator("#sidebar").is_visible()
    page.wait_for_function("document.activeElement.closest('#sidebar') !== null")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('#sidebar nav') !== null")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.body.classList.contains('nav-open')")
    unnamed = page.evaluate(
        "[...document.querySelectorAll('button')].filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length"
    )
    assert unnamed == 0
