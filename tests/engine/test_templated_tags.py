"""Task ``tags`` written as templates are rendered with the request's params before an ant is
chosen (issue 14, finding 8: the queen looked for an ant tagged ``<no value>``)."""

import time

import pytest

from jobs.models import JobRequest
from tests.engine.harness import wait_for_state
from tests.engine.test_scenarios import submit, tasks_of

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATED_TAGS = """\
job_type: templated-tags
tasks:
- task_type: first
  method: SHELL
  tags: ["{{.First}}"]
  script: ["echo first"]
  on_completed: second
- task_type: second
  method: SHELL
  tags: ["{{.Second}}"]
  script: ["echo second"]
"""


def test_templated_tags_route_to_the_ant_they_name(cluster, api, alice):
    requests = [
        submit(api, alice, TEMPLATED_TAGS, First="a", Second="b"),
        submit(api, alice, TEMPLATED_TAGS, First="b", Second="a"),
    ]
    for request in requests:
        done = wait_for_state(request.pk, timeout=30)
        assert done.job_state == "COMPLETED", done.state_message
    ants = [{t: task.ant_id for t, task in tasks_of(r).items()} for r in requests]
    assert ants == [{"first": "ant-a", "second": "ant-b"}, {"first": "ant-b", "second": "ant-a"}]


def test_templated_tags_no_ant_has_wait_naming_the_rendered_tag(cluster, api, alice):
    request = submit(api, alice, TEMPLATED_TAGS, First="gpu", Second="a")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        request = JobRequest.objects.get(pk=request.pk)
        if "gpu" in request.state_message:
            break
        time.sleep(0.1)
    assert "gpu" in request.state_message and "<no value>" not in request.state_message
