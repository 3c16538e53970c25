"""User control of running work: cancel (pause, restart and trigger come with scheduling control)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from ants.protocol import ACTION_CANCEL, TaskRequest
from jobs.models import JobRequest
from jobs.queen import transitions
from jobs.queen.messaging import get_transport
from jobs.states import JOB_TERMINAL


def request_cancel(*, request: JobRequest, reason: str = "cancelled by user") -> JobRequest:
    """Cancel a pending or running request; tasks running on ants are killed there."""
    if request.job_state in JOB_TERMINAL:
        raise ValidationError(f"job request {request.pk} is already {request.job_state}")
    with transaction.atomic():
        if not transitions.job_cancel(request.pk, reason):
            request.refresh_from_db()
            raise ValidationError(f"job request {request.pk} is already {request.job_state}")
        on_ants = transitions.tasks_cancel(request.executions.values_list("pk", flat=True), request.pk)
        transaction.on_commit(lambda: _tell_ants(on_ants, request.pk))
    request.refresh_from_db()
    return request


def _tell_ants(on_ants: list[tuple[int, str, int]], request_id: int) -> None:
    transport = get_transport()
    for task_id, ant_id, attempt in on_ants:
        transport.send_task(
            ant_id,
            TaskRequest(task_execution_id=task_id, job_request_id=request_id, task_type="", attempt=attempt,
                        action=ACTION_CANCEL, ant_id=ant_id),
        )  # fmt: skip
