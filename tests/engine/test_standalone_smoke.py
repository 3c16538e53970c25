import pytest

from ants.messaging import InProcessTransport
from jobs.models import TaskExecution
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.harness import Harness, wait_for_state

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = """\
job_type: chain
tasks:
- task_type: one
  method: SHELL
  script: ["echo one {{.Name}}"]
  on_completed: two
- task_type: two
  method: SHELL
  script: ["echo two"]
"""


def test_chain_runs_to_completion(api, alice, tmp_path):
    assert upload(api, CHAIN).status_code == 201
    harness = Harness(InProcessTransport(), tmp_path).start()
    harness.add_ant("ant-a")
    try:
        request = request_submit(org_id=alice.org_id, user=alice.user, job_type="chain", params={"Name": "x"})
        done = wait_for_state(request.pk)
        assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
        states = dict(
            TaskExecution.objects.filter(job_execution__job_request=request).values_list(
                "task_type", "task_state"
            )
        )
        assert states == {"one": "COMPLETED", "two": "COMPLETED"}
    finally:
        harness.stop()
