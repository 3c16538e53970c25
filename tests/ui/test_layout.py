# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""The app layout in Chromium: usable at 390 px (menu button, no sideways scrolling), dark mode
from the browser's preference, and error pages inside the layout with a way back."""

import os
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser_kit import PHONE, chromium, main_pages, open_page, page_overflow, seed  # noqa: F401
from tests.ui.test_browser import CHROMIUM, asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_main_page_fits_a_390px_phone(chromium, asgi_server, alice, scheme):  # type: ignore[no-untyped-def]
    world = seed(alice)
    page = open_page(chromium, asgi_server, alice.user, viewport=PHONE, scheme=scheme)
    for path in main_pages(world):
        page.goto(path)
        assert page_overflow(page) <= 0, f"{path} is wider than 390 px ({scheme})"
        # the sidebar is folded away: nothing of it covers the page
        assert not page.locator("#sidebar").is_visible(), path
        assert page.locator("#menu-toggle").is_visible(), path


def test_the_menu_button_opens_and_closes_the_sidebar(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user, viewport=PHONE)
    page.goto("/")
    toggle = page.locator("#menu-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    page.locator("#sidebar nav a", has_text="Job requests").click()
    page.wait_for_url("**/jobs/requests")
    assert not page.locator("#sidebar").is_visible()
    page.locator("#menu-toggle").click()
    assert page.locator("#sidebar").is_visible()
    page.keyboard.press("Escape")
    page.wait_for_function("!document.body.classList.contains('nav-open')")


def test_desktop_keeps_the_sidebar_open(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user)
    page.goto("/")
    assert page.locator("#sidebar").is_visible()
    assert not page.locator("#menu-toggle").is_visible()
    assert page_overflow(page) <= 0


def _background(page: Any, selector: str) -> str:
    return page.evaluate(f"getComputedStyle(document.querySelector('{selector}')).backgroundColor")


def test_dark_mode_follows_the_browser(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    seed(alice)
    light = open_page(chromium, asgi_server, alice.user, scheme="light")
    dark = open_page(chromium, asgi_server, alice.user, scheme="dark")
    for page in (light, dark):
        page.goto("/jobs/requests")
    assert _background(light, "body") == "rgb(245, 246, 248)"
    assert _background(dark, "body") == "rgb(15, 20, 26)"
    assert _background(dark, ".panel") == "rgb(23, 30, 38)"
    assert _background(dark, "th") != "rgb(250, 251, 252)"  # no light table heads left in dark mode


@pytest.mark.parametrize("viewport", [None, PHONE])
def test_404_is_inside_the_layout_with_a_way_back(chromium, asgi_server, alice, viewport):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user, **({"viewport": viewport} if viewport else {}))
    page.goto("/jobs/definitions")
    response = page.goto("/jobs/definitions/999999")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert page.locator("#menu-toggle, #sidebar").count() == 2  # the app's layout
    page.locator("#error-back").click()
    page.wait_for_url("**/jobs/definitions")
    assert page_overflow(page) <= 0


def test_get_on_an_action_url_is_a_405_page(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    world = seed(alice)
    page = open_page(chromium, asgi_server, alice.user)
    for path in (
        f"/jobs/requests/{world['request'].pk}/cancel",
        f"/jobs/definitions/{world['second'].pk}/toggle",
    ):
        response = page.goto(path)
        assert response.status == 405, path
        assert response.headers["allow"] == "POST"
        assert page.locator("h1").inner_text() == "Not an action you can open"
        page.locator("#error-home").click()
        page.wait_for_url("**/")


def test_403_is_inside_the_layout(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    from orgs import roles

    alice.user.role = roles.VIEWER
    alice.user.save()
    page = open_page(chromium, asgi_server, alice.user)
    response = page.goto("/jobs/definitions/upload")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    assert page.locator("#sidebar").count() == 1


def test_a_superuser_without_an_organization_reaches_system_configs(chromium, asgi_server, db):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    page = open_page(chromium, asgi_server, root)
    page.goto("/")
    page.wait_for_url("**/orgs/setup")
    page.locator("#sidebar nav a", has_text="System configs").click()
    page.wait_for_url("**/configs")
    assert page.locator("h1").first.inner_text().startswith("System config")
    assert page.locator("#sidebar").is_visible()


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.mark.skipif(
    not os.environ.get("FORMICARY_SCREENSHOTS"), reason="set FORMICARY_SCREENSHOTS=1 to refresh"
)
def test_screenshots_of_the_main_pages(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    """Refreshes docs/screenshots/ (desktop and 390 px, light and dark): scripts/screenshots."""
    from tests.engine.harness import wait_for_state

    world = seed(alice)
    wait_for_state(world["request"].pk)
    pages = {"dashboard": "/", "requests": "/jobs/requests", "definition": f"/jobs/definitions/{world['second'].pk}",
             "upload": "/jobs/definitions/upload", "ants": "/ants"}  # fmt: skip
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in (("desktop", {"width": 1200, "height": 760}), ("phone", PHONE)):
        for scheme in ("light", "dark"):
            page = open_page(chromium, asgi_server, alice.user, viewport=viewport, scheme=scheme)
            for name, path in pages.items():
                page.goto(path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}-{scheme}.png"))
            page.context.close()
    assert len(list(SCREENSHOTS.glob("*.png"))) >= 20
