"""The request page's Cancel button on a running task (templates/jobs/_task_cancel.html)."""

import pytest

from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from tests.ui.test_pages import login

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: ui-cut
tasks:
- task_type: stuck
  method: SHELL
  script: ["sleep 600"]
  on_failed: cleanup
- task_type: cleanup
  method: SHELL
  script: ["echo cleanup"]
"""


def running(alice) -> JobRequest:  # type: ignore[no-untyped-def]
    """A request whose first task runs (rows as a queen leaves them: no queen runs here)."""
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="ui-cut")
    execution = JobExecution.objects.create(
        organization_id=alice.org_id, job_request=request, job_state="EXECUTING"
    )
    TaskExecution.objects.create(organization_id=alice.org_id, job_execution=execution, task_type="stuck",
                                 method="SHELL", task_state="EXECUTING", attempt=1)  # fmt: skip
    JobRequest.objects.filter(pk=request.pk).update(job_state="EXECUTING", last_execution=execution)
    return request


def test_cancel_button_cuts_the_running_task(alice):  # type: ignore[no-untyped-def]
    request = running(alice)
    client = login(alice)
    page = client.get(f"/jobs/requests/{request.pk}").content.decode()
    assert 'id="cancel-task-stuck"' in page and 'id="cancel-task-cleanup"' not in page
    resp = client.post(f"/jobs/requests/{request.pk}/tasks/stuck/cancel")
    assert resp.status_code == 302
    states = dict(
        TaskExecution.objects.filter(job_execution__job_request=request).values_list(
            "task_type", "task_state"
        )
    )
    assert states == {"stuck": "CANCELLED", "cleanup": "READY"}  # its on_failed path is next
    page = client.get(f"/jobs/requests/{request.pk}").content.decode()
    assert 'id="cancel-task-stuck"' not in page and 'id="cancel-task-cleanup"' in page


def test_another_organization_cannot_cancel_a_task(alice, bob):  # type: ignore[no-untyped-def]
    request = running(alice)
    assert login(bob).post(f"/jobs/requests/{request.pk}/tasks/stuck/cancel").status_code == 404
    assert TaskExecution.objects.get(job_execution__job_request=request).task_state == "EXECUTING"
