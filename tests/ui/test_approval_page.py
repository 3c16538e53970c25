# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""Manual approval in a real browser: the "Waiting for my approval" page lists what the user may
review, the request page's Approve/Reject buttons with a comment record the decision and the job
goes on; a viewer sees neither the buttons nor the list."""

import pytest

from jobs.models import ApprovalReview, TaskExecution
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs import services as org_services
from tests.engine.harness import wait_for_state
from tests.ui.browser_kit import chromium, open_page  # noqa: F401
from tests.ui.test_browser import asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]

GATE = """\
job_type: ui-gate
tasks:
- task_type: approve
  method: MANUAL
  on_exit_code:
    APPROVED: deploy
    REJECTED: rejected
- task_type: deploy
  method: SHELL
  script: ["echo deployed"]
- task_type: rejected
  method: SHELL
  script: ["echo rejected"]
"""


def _user(username: str, role: str):  # type: ignore[no-untyped-def]
    user = org_services.user_ensure(username=username, org_name="acme", create=True)
    user.role = role
    user.save()
    return user


def test_approve_and_reject_buttons_and_the_waiting_list(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=GATE)
    first = request_submit(org_id=alice.org_id, user=alice.user, job_type="ui-gate")
    second = request_submit(org_id=alice.org_id, user=alice.user, job_type="ui-gate")
    for request in (first, second):
        assert wait_for_state(request.pk, ["MANUAL_APPROVAL_REQUIRED"], timeout=60)
    carol, vic = _user("carol", "admin"), _user("vic", "viewer")

    page = open_page(chromium, asgi_server, carol)
    page.goto("/")
    page.click("#nav-approvals")
    rows = page.locator("#approvals-waiting tbody tr")
    assert rows.count() == 2
    page.click(f"#approvals-waiting a[href='/jobs/requests/{first.pk}']")
    page.fill("#approval-comments-approve", "looks good")
    page.click("#approve-approve")
    assert "looks good" in page.locator(".approval-reviews").inner_text()
    assert "carol" in page.locator(".approval-reviews").inner_text()
    done = wait_for_state(first.pk, timeout=60)
    assert done.job_state == "COMPLETED"
    assert (
        TaskExecution.objects.get(job_execution__job_request=first, task_type="approve").exit_code
        == "APPROVED"
    )

    page.goto("/jobs/approvals")
    assert page.locator("#approvals-waiting tbody tr").count() == 1
    page.goto(f"/jobs/requests/{second.pk}")
    page.fill("#approval-comments-approve", "not now")
    page.click("#reject-approve")
    assert "REJECTED" in page.locator(".approval-reviews").inner_text()
    done = wait_for_state(second.pk, timeout=60)
    tasks = {t.task_type: t for t in TaskExecution.objects.filter(job_execution__job_request=second)}
    assert tasks["approve"].exit_code == "REJECTED" and "rejected" in tasks and "deploy" not in tasks
    review = ApprovalReview.objects.get(job_request=second)
    assert (review.username, review.status, review.comments) == ("carol", "REJECTED", "not now")
    page.goto("/jobs/approvals")
    assert "Nothing waits for your approval" in page.locator("#approvals-waiting").inner_text()

    third = request_submit(org_id=alice.org_id, user=alice.user, job_type="ui-gate")
    assert wait_for_state(third.pk, ["MANUAL_APPROVAL_REQUIRED"], timeout=60)
    viewer = open_page(chromium, asgi_server, vic)
    viewer.goto(f"/jobs/requests/{third.pk}")
    assert viewer.locator("#approvals .approval-waiting").count() == 1
    assert viewer.locator("#approve-approve").count() == 0 and viewer.locator("#nav-approvals").count() == 0


def test_the_buttons_appear_live_when_the_wait_begins(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    text = GATE.replace("job_type: ui-gate\ntasks:\n", "job_type: ui-gate-live\ntasks:\n- task_type: build\n"
                        "  method: SHELL\n  script: [\"sleep 3\"]\n  on_completed: approve\n")  # fmt: skip
    definition_upload(org_id=alice.org_id, user=alice.user, text=text)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="ui-gate-live")
    carol = _user("carol", "admin")
    page = open_page(chromium, asgi_server, carol)
    page.goto(f"/jobs/requests/{request.pk}")
    assert page.locator("#approve-approve").count() == 0
    page.locator("#approve-approve").wait_for(state="visible", timeout=60_000)  # no reload: the event
    assert page.locator(".job-state").inner_text() == "MANUAL_APPROVAL_REQUIRED"
    page.click("#approve-approve")
    assert wait_for_state(request.pk, timeout=60).job_state == "COMPLETED"
