"""The one table of allowed state changes (``transitions.MOVES``), pair by pair, on the database:
every allowed (from, to) moves the row; every other pair is refused (an error when asked for
explicitly, nothing written when the row is simply not in an allowed source state)."""

from itertools import product

import pytest

from jobs.domain import transitions
from jobs.domain.transitions import MOVES, TransitionRefused
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from jobs.states import JobState, TaskState

pytestmark = pytest.mark.django_db

ONE_TASK = """\
job_type: table-job
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
"""
STATES = {"request": list(JobState), "execution": list(JobState), "task": list(TaskState)}


def _rows(alice) -> dict[str, tuple[type, int, str]]:  # type: ignore[no-untyped-def]
    """A request, its execution and a task: kind -> (model, id, state column)."""
    definition_upload(org_id=alice.org_id, user=alice.user, text=ONE_TASK)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="table-job")
    execution = transitions.execution_create(request)
    task = TaskExecution.objects.create(
        organization_id=alice.org_id, job_execution=execution, task_type="one", method="SHELL"
    )
    return {
        "request": (JobRequest, request.pk, "job_state"),
        "execution": (JobExecution, execution.pk, "job_state"),
        "task": (TaskExecution, task.pk, "task_state"),
    }


@pytest.mark.parametrize("kind", sorted(MOVES))
def test_every_pair_of_the_table(alice, kind: str) -> None:  # type: ignore[no-untyped-def]
    model, pk, column = _rows(alice)[kind]
    allowed = MOVES[kind]
    checked = 0
    for source, target in product(STATES[kind], STATES[kind]):
        model.objects.filter(pk=pk).update(**{column: source})  # the row's state before the move

        def state() -> str:
            return model.objects.values_list(column, flat=True).get(pk=pk)

        if (source, target) in allowed:
            assert source in transitions.sources(kind, target)
            assert transitions.move(kind, pk, target, [source]) == 1, (kind, source, target)
            assert state() == target, (kind, source, target)
            model.objects.filter(pk=pk).update(**{column: source})
            assert transitions.move(kind, pk, target) == 1, (kind, source, target)  # table's sources
        else:
            with pytest.raises(TransitionRefused):
                transitions.move(kind, pk, target, [source])
            assert state() == source, (kind, source, target)
            if any(to == target for _, to in allowed):
                assert transitions.move(kind, pk, target) == 0, (kind, source, target)
            else:
                with pytest.raises(TransitionRefused):
                    transitions.move(kind, pk, target)
            assert state() == source, (kind, source, target)
        checked += 1
    assert checked == len(STATES[kind]) ** 2


def test_the_table_names_only_known_states() -> None:
    for kind, pairs in MOVES.items():
        names = {str(s) for s in STATES[kind]}
        assert {s for pair in pairs for s in pair} <= names, kind


def test_a_named_change_asking_for_a_refused_pair_writes_nothing(alice) -> None:  # type: ignore[no-untyped-def]
    _, pk, _ = _rows(alice)["task"]
    with pytest.raises(TransitionRefused, match="task may not go from COMPLETED to STARTED"):
        transitions.move("task", pk, TaskState.STARTED, [TaskState.COMPLETED])
    # a task already finished cannot be finished again: a stale answer changes nothing
    TaskExecution.objects.filter(pk=pk).update(task_state=TaskState.COMPLETED, attempt=1)
    request_id = TaskExecution.objects.get(pk=pk).job_execution.job_request_id
    assert not transitions.task_finish(pk, request_id, 1, TaskState.FAILED)
    assert TaskExecution.objects.get(pk=pk).task_state == TaskState.COMPLETED
