# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""Forms in Chromium: the submit form's bounded priority and its fields from the template's
variables, the upload editor's line gutter and error marks, the version diff, token copying."""

import pytest

from jobs.models import JobRequest
from tests.ui.browser_kit import PHONE, chromium, open_page, page_overflow, seed  # noqa: F401
from tests.ui.test_browser import asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]

BAD_DEFINITION = """\
job_type: bad-job
tasks:
- task_type: a
  script:
    - echo hi
  on_completed: missing
"""


@pytest.mark.parametrize("viewport", [None, PHONE])
def test_priority_is_bounded_in_the_browser_and_on_the_server(chromium, asgi_server, alice, viewport):  # type: ignore[no-untyped-def]
    world = seed(alice)
    page = open_page(chromium, asgi_server, alice.user, **({"viewport": viewport} if viewport else {}))
    page.goto(f"/jobs/definitions/{world['second'].pk}")
    before = JobRequest.objects.count()
    page.fill("input[name=param_Branch]", "main")
    page.fill("input[name=job_priority]", "99999999999999999999")
    page.click("#submit-form button[type=submit]")
    assert page.evaluate("document.querySelector('input[name=job_priority]').validity.valid") is False
    # without the browser's check, the server answers 400 naming the bound, never a 500
    page.evaluate("document.getElementById('submit-form').noValidate = true")
    with page.expect_response(lambda r: r.url.endswith("/submit")) as info:
        page.click("#submit-form button[type=submit]")
    assert info.value.status == 400
    assert "1000" in page.locator("#submit-form .errorlist").inner_text()
    assert JobRequest.objects.count() == before
    assert page_overflow(page) <= 0


def test_submit_offers_the_templates_variables(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    world = seed(alice)
    page = open_page(chromium, asgi_server, alice.user)
    page.goto(f"/jobs/definitions/{world['second'].pk}")
    names = page.eval_on_selector_all("#submit-form input[name^=param_]", "els => els.map(e => e.name)")
    # required first; then what the template uses, minus job_variables (Region) and built-ins
    assert names == ["param_Branch", "param_Verbose", "param_Target"]
    page.fill("input[name=param_Branch]", "dev")
    page.fill("input[name=param_Target]", "arm64")
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/jobs/requests/*")
    request = JobRequest.objects.filter(job_type="ui-job").order_by("-id").first()
    params = {p.name: p.display_value() for p in request.params.all()}
    assert params["Target"] == "arm64" and params["Branch"] == "dev" and "Verbose" not in params


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_upload_editor_numbers_lines_and_marks_the_ones_in_error(chromium, asgi_server, alice, scheme):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user, scheme=scheme)
    page.goto("/jobs/definitions/upload")
    page.fill("textarea[name=text]", BAD_DEFINITION)
    assert page.locator(".editor .gutter").inner_text().split() == [str(n) for n in range(1, 8)]
    page.click("button[type=submit]")
    page.wait_for_selector("#upload-errors")
    assert "(line 6)" in page.locator("#upload-errors").inner_text()
    assert page.locator(".editor .gutter .err").all_inner_texts() == ["6"]
    page.locator("a[data-goto-line='6']").click()
    selected = page.evaluate(
        "(() => { const t = document.querySelector('textarea[name=text]');"
        " return t.value.slice(t.selectionStart, t.selectionEnd); })()"
    )
    assert selected == "  on_completed: missing"


def test_upload_editor_fits_a_phone(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user, viewport=PHONE)
    page.goto("/jobs/definitions/upload")
    page.fill("textarea[name=text]", BAD_DEFINITION.replace("echo hi", "echo " + "x" * 200))
    assert page_overflow(page) <= 0


def test_diff_between_two_versions(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    world = seed(alice)
    page = open_page(chromium, asgi_server, alice.user)
    page.goto(f"/jobs/definitions/{world['second'].pk}")
    assert page.locator("#diff-from").input_value() == str(world["first"].pk)
    page.click("#diff-form button[type=submit]")
    page.wait_for_selector("#diff")
    assert page.locator(".diff .del").all_inner_texts()[-1] == "-    - echo testing"
    assert page.locator(".diff .add").all_inner_texts()[-1] == "+    - echo testing again"
    # the same version twice: no difference
    page.select_option("#diff-from", str(world["second"].pk))
    page.click("#diff-form button[type=submit]")
    page.wait_for_selector("#diff")
    assert "same text" in page.locator("#diff").inner_text()


def test_a_new_token_has_a_copy_button(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user)
    page.goto("/account")
    page.fill("#tokens input[name=name]", "ci")
    page.locator("#tokens button", has_text="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    page.click("#copy-token")
    # the clipboard's write is a promise: the button says so when it settles (it raced before)
    page.wait_for_function("document.querySelector('#copy-token').textContent === 'Copied'", timeout=5000)
    assert page.locator("#copy-token").inner_text() == "Copied"
    assert page.evaluate("window.formicaryCopied") == token
