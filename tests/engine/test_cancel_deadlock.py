"""A cancel that deadlocks with the queen is tried again (jobs/services/control.py).

The cancel locks the request's row, then its tasks'; the queen applying an answer locks a task,
then its request. On PostgreSQL the two can wait on each other: the server aborts one with
40P01. This provokes a real deadlock on a real server, with the cancel as its victim, and checks
that the cancel still goes through and the queen's transaction commits."""

import threading
import time

import pytest
from django.db import DatabaseError, connection, connections, transaction

from jobs.domain import transitions
from jobs.models import JobRequest, TaskExecution
from jobs.services import control
from jobs.services.requests import request_submit
from jobs.states import JobState, TaskState
from tests.conftest import upload

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-lock deadlocks: PostgreSQL"),
]

DEFINITION = """\
job_type: deadlocking
tasks:
- task_type: work
  method: SHELL
  script: [sleep 60]
"""


def _deadlock_timeout(value: str) -> None:
    """This session's wait before it looks for a deadlock (the one that looks first is aborted)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET deadlock_timeout = '{value}'")
    except DatabaseError as exc:  # a non-superuser may not set it
        pytest.skip(f"cannot set deadlock_timeout here: {exc}")


def test_a_cancel_that_deadlocks_with_the_queen_is_tried_again(transactional_db, api, alice, monkeypatch):
    assert upload(api, DEFINITION).status_code in (200, 201)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="deadlocking")
    assert transitions.request_claim(request.pk)
    execution = transitions.execution_create(request)
    task = transitions.task_ready(execution, "work", "SHELL", first=True)
    assert transitions.task_dispatch(task.pk, request.pk, "ant-a", task.attempt) == 1

    task_locked, request_locked = threading.Event(), threading.Event()
    queen: dict[str, object] = {}

    def the_queen() -> None:
        """Locks the task as applying its answer does, then waits for the request's row."""
        try:
            _deadlock_timeout("10s")  # the cancel looks first: it is the victim
            with transaction.atomic():
                list(TaskExecution.objects.select_for_update().filter(pk=task.pk))
                task_locked.set()
                assert request_locked.wait(10)
                queen["updated"] = JobRequest.objects.filter(pk=request.pk).update(
                    state_message="the queen's"
                )
        except Exception as exc:  # reported to the test below
            queen["error"] = exc
        finally:
            connections.close_all()

    calls = []
    real_cancel = transitions.job_cancel

    def job_cancel(request_id: int, reason: str) -> bool:
        """The real job_cancel; on the first try, the queen then queues for the row it locked."""
        moved = real_cancel(request_id, reason)
        calls.append(moved)
        if len(calls) == 1:
            request_locked.set()
            with connection.cursor() as cursor:  # until the queen waits for this row
                for _ in range(200):
                    cursor.execute(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
                    )
                    if cursor.fetchone()[0]:
                        break
                    time.sleep(0.02)
        return moved

    monkeypatch.setattr(transitions, "job_cancel", job_cancel)
    _deadlock_timeout("100ms")
    thread = threading.Thread(target=the_queen)
    thread.start()
    try:
        assert task_locked.wait(10)
        cancelled = control.request_cancel(request=JobRequest.objects.get(pk=request.pk))
    finally:
        thread.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET deadlock_timeout")

    assert "error" not in queen, queen.get("error")
    assert queen["updated"] == 1  # the queen's transaction went through
    assert calls == [True, True]  # aborted once as the deadlock's victim, then done
    assert cancelled.job_state == JobState.CANCELLED
    assert TaskExecution.objects.get(pk=task.pk).task_state == TaskState.CANCELLED
