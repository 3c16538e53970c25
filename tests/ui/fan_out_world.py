"""A request whose fan-out step has instances, for the UI tests of issue 17's parallel work.

The queen does not create instances here: the rows are inserted as the fan-out engine stores
them (``fan_out_of`` the step, ``fan_out_index`` the item, ``task_type`` ``<step>-fo-<i>``), and
every state change after that goes through ``jobs.domain.transitions`` like the queen's own."""

from dataclasses import dataclass
from typing import Any

from jobs.domain import transitions
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from jobs.states import TaskState

DEFINITION = """\
job_type: regions
tasks:
- task_type: list
  method: SHELL
  script: ["echo '::add-job-context Regions=[\\"eu\\",\\"us\\"]'"]
  on_completed: deploy
- task_type: deploy
  method: SHELL
  script: ["echo deploying {{.region}}"]
  fan_out: {source: Regions, item_var: region, max_parallel: 2}
  on_completed: report
- task_type: report
  method: SHELL
  script: [echo done]
"""


@dataclass
class FanOutWorld:
    request: JobRequest
    execution: JobExecution
    step: TaskExecution
    instances: list[int]  # ids, by item index


def fan_out_request(member: Any, items: int) -> FanOutWorld:
    """``list`` completed, ``deploy`` running with ``items`` READY instances."""
    definition_upload(org_id=member.org_id, user=member.user, text=DEFINITION)
    request = request_submit(org_id=member.org_id, user=member.user, job_type="regions")
    assert transitions.request_claim(request.pk)
    execution = transitions.execution_create(request)
    first = transitions.task_ready(execution, "list", "SHELL", first=True)
    finish(first.pk, request.pk, TaskState.COMPLETED)
    step = transitions.task_ready(execution, "deploy", "SHELL")
    attempt = transitions.task_dispatch(step.pk, request.pk, "ant-ui", 0)
    assert attempt and transitions.task_executing(step.pk, request.pk, attempt)
    rows = [
        TaskExecution(
            organization_id=member.org_id, job_execution=execution, task_type=f"deploy-fo-{i}", method="SHELL",
            task_order=2 + i, fan_out_of="deploy", fan_out_index=i,
        )
        for i in range(items)
    ]  # fmt: skip
    TaskExecution.objects.bulk_create(rows, batch_size=500)
    ids = list(
        TaskExecution.objects.filter(job_execution=execution, fan_out_of="deploy")
        .order_by("fan_out_index")
        .values_list("pk", flat=True)
    )
    request.refresh_from_db()
    return FanOutWorld(request, execution, TaskExecution.objects.get(pk=step.pk), ids)


def start(task_id: int, request_id: int) -> int:
    """READY -> STARTED -> EXECUTING, as a dispatch and the ant's first answer do."""
    attempt = TaskExecution.objects.values_list("attempt", flat=True).get(pk=task_id)
    new = transitions.task_dispatch(task_id, request_id, "ant-ui", attempt)
    assert new and transitions.task_executing(task_id, request_id, new)
    return new


def finish(task_id: int, request_id: int, state: TaskState, exit_code: str = "0") -> None:
    """Runs a READY task to ``state``, or ends a running one there."""
    task = TaskExecution.objects.get(pk=task_id)
    attempt = task.attempt if task.task_state in ("STARTED", "EXECUTING") else start(task_id, request_id)
    assert transitions.task_finish(task_id, request_id, attempt, state, exit_code=exit_code)
