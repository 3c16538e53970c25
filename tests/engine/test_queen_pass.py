"""What one pass of an idle queen does with a submit: the submit wakes it (over Redis, an entry
on the responses stream; in one process, an event), and the same pass starts the request and
sends its first task to the ant (docs/performance.md, "Submit-to-start")."""

import os
import uuid

import pytest

from ants.messaging import InProcessTransport, transport_from_url
from ants.protocol import AntRegistration
from artifacts.models import Artifact
from jobs.domain import events
from jobs.models import JobRequest, TaskExecution
from jobs.queen.queen import Queen
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs.models import OrgConfig

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


STATIC = """\
job_type: pass-static
tasks:
- task_type: first
  method: SHELL
  script: ["true"]
  on_completed: second
- task_type: second
  method: SHELL
  script: ["true"]
"""


def test_a_started_jobs_first_task_goes_without_a_ready_row(alice, queen):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=STATIC)
    config = OrgConfig(organization_id=alice.org_id, name="Region", secret=False)
    config.set_value("eu-1")
    config.save()
    seen: list[str] = []
    unsubscribe = events.subscribe(
        lambda kind, p: seen.append(p["task_state"]) if kind == "task_state" else None
    )
    try:
        request = request_submit(org_id=alice.org_id, user=alice.user, job_type="pass-static")
        queen.run_once()
    finally:
        unsubscribe()
    task = TaskExecution.objects.get(job_execution__job_request=request)
    assert (task.task_state, task.ant_id, task.attempt) == ("STARTED", "ant-pass", 1)
    assert seen == ["STARTED"]  # created STARTED: no READY version, no READY event
    request.refresh_from_db()
    assert request.job_state == "EXECUTING"
    assert request.last_execution.job_state == "EXECUTING"
    sent = queen.transport.read_tasks("ant-pass", "ant-pass", 0, 10)
    assert [(d.message.task_execution_id, d.message.attempt) for d in sent] == [(task.pk, 1)]
    assert sent[0].message.variables["Region"] == "eu-1"  # a static definition's variables too


def test_a_first_task_with_no_room_waits_ready_and_goes_when_room_frees(alice, queen):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=STATIC)
    first = request_submit(org_id=alice.org_id, user=alice.user, job_type="pass-static")
    second = request_submit(org_id=alice.org_id, user=alice.user, job_type="pass-static")
    queen.run_once()
    tasks = {t.job_execution.job_request_id: t for t in TaskExecution.objects.select_related("job_execution")}
    assert (tasks[first.pk].task_state, tasks[second.pk].task_state) == ("STARTED", "READY")  # one slot
    queen.resources.release("ant-pass", tasks[first.pk].pk)
    assert queen.engine.dispatch_ready() == 1
    assert TaskExecution.objects.get(pk=tasks[second.pk].pk).task_state == "STARTED"


def test_a_forked_childs_first_task_gets_its_parents_artifact_urls(alice, queen):  # type: ignore[no-untyped-def]
    """A forked child is sent by the dispatcher, which loads its parent's artifact URLs into the
    variables (the start's own send loads no artifacts: a new request has none)."""
    definition_upload(org_id=alice.org_id, user=alice.user, text=STATIC)
    parent = request_submit(org_id=alice.org_id, user=alice.user, job_type="pass-probe", params={"Out": "p"})
    Artifact.objects.create(organization_id=alice.org_id, kind=Artifact.Kind.ARTIFACT, name="out.txt",
                            job_request=parent, task_type="build", storage_key=f"pass/{parent.pk}/out.txt")  # fmt: skip
    JobRequest.objects.filter(pk=parent.pk).update(job_state="EXECUTING")  # it runs: the child is its fork
    child = request_submit(org_id=alice.org_id, user=alice.user, job_type="pass-static", parent=parent)
    queen.run_once()
    task = TaskExecution.objects.get(job_execution__job_request=child)
    assert task.task_state == "STARTED"
    sent = queen.transport.read_tasks("ant-pass", "ant-pass", 0, 10)
    assert [d.message.task_execution_id for d in sent] == [task.pk]
    assert "build_ArtifactURL_1" in sent[0].message.variables
