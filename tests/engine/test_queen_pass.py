"""What one pass of an idle queen does with a submit: the submit wakes it (over Redis, an entry
on the responses stream; in one process, an event), and the same pass starts the request and
sends its first task to the ant (docs/performance.md, "Submit-to-start")."""

import os
import uuid

import pytest

from ants.messaging import InProcessTransport, transport_from_url
from ants.protocol import AntRegistration
from jobs.domain import events
from jobs.models import TaskExecution
from jobs.queen.queen import Queen
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = """\
job_type: pass-probe
tasks:
- task_type: first
  method: SHELL
  script: ["echo {{.Out}}"]
"""


@pytest.fixture(params=["inprocess", "redis"])
def queen(request, alice, use_transport):  # type: ignore[no-untyped-def]
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("needs REDIS_URL (scripts/test starts Redis)")
        transport = transport_from_url(os.environ["REDIS_URL"], prefix=f"t{uuid.uuid4().hex[:8]}")
    else:
        transport = InProcessTransport()
    use_transport(transport)  # the submit's wake goes through it
    definition_upload(org_id=alice.org_id, user=alice.user, text=PROBE)
    q = Queen(transport, queen_id="queen-pass")
    q.resources.heard(AntRegistration(ant_id="ant-pass", max_capacity=1, methods=["SHELL"]))
    q.start()
    q.run_once()  # takes the scheduler lease; nothing is pending yet
    yield q
    q.stop()


def test_a_submit_is_started_and_sent_in_one_pass(alice, queen):  # type: ignore[no-untyped-def]
    wakes = queen.transport.wakes_read
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="pass-probe", params={"Out": "x"})
    assert events.wakes_settled()
    queen.run_once()
    # before, the task stayed READY until the next pass (after housekeeping and another read)
    task = TaskExecution.objects.get(job_execution__job_request=request)
    assert (task.task_state, task.ant_id) == ("STARTED", "ant-pass")
    sent = queen.transport.read_tasks("ant-pass", "ant-pass", 0, 10)
    assert [d.message.task_execution_id for d in sent] == [task.pk]
    assert sent[0].message.variables["Out"] == "x"
    if isinstance(queen.transport, InProcessTransport):
        return
    assert queen.transport.wakes_read > wakes  # the submit's wake crossed Redis to this queen
