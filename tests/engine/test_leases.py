"""The lease service (jobs/queen/leases.py) on the database: many queens' dispatchers leasing at
once never exceed the quota (PostgreSQL row locks), a lease is reused by its own attempt, and it
ends when its task moves on or its lease timeout passes."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from jobs.definition.model import TaskSpec
from jobs.domain import transitions
from jobs.models import JobRequest, JobResource, JobResourceUse, TaskExecution
from jobs.queen import leases
from jobs.services.requests import request_submit
from jobs.states import TaskState
from tests.conftest import upload

DEFINITION = """\
job_type: leasing
max_concurrency: 100
tasks:
- task_type: deploy
  method: SHELL
  script: [echo hi]
  resources:
    resource_type: deploy-slot
"""
CLAIM = TaskSpec(task_type="deploy", resources={"resource_type": "deploy-slot"})


def ready_tasks(api, alice, n: int) -> list[TaskExecution]:  # type: ignore[no-untyped-def]
    assert upload(api, DEFINITION).status_code in (200, 201)
    out = []
    for _ in range(n):
        request = request_submit(org_id=alice.org_id, user=alice.user, job_type="leasing")
        assert transitions.request_claim(request.pk)
        execution = transitions.execution_create(request)
        out.append(transitions.task_ready(execution, "deploy", "SHELL", first=True))
    return out


def make_resource(alice, **fields) -> JobResource:  # type: ignore[no-untyped-def]
    return JobResource.objects.create(organization_id=alice.org_id, resource_type="deploy-slot", **fields)


def lease(task: TaskExecution) -> leases.Lease:
    task = TaskExecution.objects.select_related("job_execution__job_request").get(pk=task.pk)
    return leases.lease_for(task, task.job_execution.job_request, CLAIM)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_concurrent_leases_never_exceed_the_quota(transactional_db, api, alice):
    slot = make_resource(alice, quota=2)
    tasks = ready_tasks(api, alice, 8)
    barrier = threading.Barrier(len(tasks))
    granted: list[int] = []

    def take(task: TaskExecution) -> None:
        try:
            barrier.wait()
            if not lease(task).waiting:
                granted.append(task.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take, args=(t,)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(granted) == 2
    assert set(JobResourceUse.objects.filter(job_resource=slot, active=True).values_list("task_execution_id", flat=True)) == set(granted)  # fmt: skip


def test_a_lease_is_reused_by_its_attempt_and_ends_when_the_task_moves_on(db, api, alice):
    slot = make_resource(alice, quota=1)
    first, second = ready_tasks(api, alice, 2)
    assert lease(first).resource_id == slot.pk
    assert lease(first).resource_id == slot.pk  # the same attempt asks again (no ant was free)
    assert JobResourceUse.objects.filter(active=True).count() == 1
    waiting = lease(second)
    assert waiting.waiting == "waiting for resource deploy-slot (1 of 1 leased)"
    request_id = first.job_execution.job_request_id
    attempt = transitions.task_dispatch(first.pk, request_id, "ant-a", first.attempt)
    assert attempt == 1 and lease(second).waiting  # running: still held
    # a lost ant: the task goes back to READY for another attempt, and the lease ends
    transitions.task_requeue(
        first.pk, request_id, from_states=["STARTED"], not_before=None, count_retry=False
    )
    assert not lease(second).waiting
    assert JobResourceUse.objects.get(task_execution=first).active is False


@pytest.mark.parametrize("end", ["COMPLETED", "FAILED", "CANCELLED"])
def test_every_end_releases(db, api, alice, end):
    make_resource(alice, quota=1)
    (task,) = ready_tasks(api, alice, 1)
    lease(task)
    request_id = task.job_execution.job_request_id
    transitions.task_dispatch(task.pk, request_id, "ant-a", task.attempt)
    assert leases.release_ended() == 0
    if end == "CANCELLED":
        transitions.tasks_cancel([task.job_execution_id], request_id)
    else:
        transitions.task_finish(task.pk, request_id, 1, TaskState(end))
    assert leases.release_ended() == 1
    use = JobResourceUse.objects.get(task_execution=task)
    assert not use.active and not use.aborted and use.released_at is not None


def test_a_cancelled_job_releases_and_an_expired_lease_is_aborted(db, api, alice):
    make_resource(alice, quota=2)
    one, two = ready_tasks(api, alice, 2)
    lease(one)
    lease(two)
    transitions.job_cancel(one.job_execution.job_request_id)
    JobResourceUse.objects.filter(task_execution=two).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases.release_ended() == 2
    assert JobResourceUse.objects.get(task_execution=two).aborted
    assert not JobResourceUse.objects.get(task_execution=one).aborted
    assert JobRequest.objects.get(pk=one.job_execution.job_request_id).job_state == "CANCELLED"


def test_no_matching_resource_waits_and_disabled_or_other_tags_do_not_match(db, api, alice):
    (task,) = ready_tasks(api, alice, 1)
    assert "none is defined and enabled" in lease(task).waiting
    make_resource(alice, quota=1, disabled=True)
    make_resource(alice, quota=1, tags=["us"])
    claim = TaskSpec(task_type="deploy", resources={"resource_type": "deploy-slot", "tags": ["eu"]})
    task = TaskExecution.objects.select_related("job_execution__job_request").get(pk=task.pk)
    assert "none is defined" in leases.lease_for(task, task.job_execution.job_request, claim).waiting
    eu = make_resource(alice, quota=1, tags=["EU", "k8s"])
    assert leases.lease_for(task, task.job_execution.job_request, claim).resource_id == eu.pk
