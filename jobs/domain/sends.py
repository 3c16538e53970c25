"""What the queen sends to ants: task requests built from a rendered task, and cancels."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ants.messaging.base import Transport
from ants.protocol import ACTION_CANCEL, TaskRequest
from artifacts import services as artifact_services
from jobs.definition.model import TaskSpec
from jobs.domain.rules import QUEEN_ANT, method_of
from jobs.models import JobExecution, JobRequest, TaskExecution


@dataclass
class Outbox:
    """Messages decided inside a transaction, sent once it commits."""

    sends: list[tuple[str, TaskRequest]] = field(default_factory=list)

    def flush(self, transport: Transport) -> None:
        if self.sends:
            transport.send_tasks(self.sends)
        self.sends.clear()


def _str_values(data: dict[str, Any]) -> dict[str, str]:
    return {
        k: v if isinstance(v, str) else str(v) for k, v in data.items() if isinstance(v, str | int | float)
    }


def task_request(
    task: TaskExecution, request: JobRequest, execution: JobExecution, spec: TaskSpec, ant_id: str,
    ant_started_at: float | None, attempt: int, data: dict[str, Any], secret_names: set[str],
) -> TaskRequest:  # fmt: skip
    body = spec.to_wire()
    return TaskRequest(
        task_execution_id=task.pk,
        job_request_id=request.pk,
        job_execution_id=execution.pk,
        task_type=task.task_type,
        attempt=attempt,
        job_type=request.job_type,
        job_version=request.job_version,
        method=method_of(spec),
        organization_id=str(request.organization_id),
        user_id=str(request.user_id or ""),
        ant_id=ant_id,
        ant_started_at=ant_started_at or 0.0,
        tags=list(spec.tags or []),
        timeout_secs=float(spec.timeout) if spec.timeout else None,
        spec={**body, "artifact_downloads": artifact_services.downloads_for(request, execution, spec)},
        variables=_str_values(data),
        secret_names=sorted(secret_names),
    )


def cancel_on_ants(
    transport: Transport, on_ants: list[tuple[int, str, int]], request_id: int,
    release: Callable[[str, int], None] | None = None,
) -> None:  # fmt: skip
    """Tell the ants running these (task id, ant id, attempt) to stop them; ``release`` frees
    the queen's slot reservations (a queen's own view of its ants)."""
    sends = []
    for task_id, ant_id, attempt in on_ants:
        if ant_id == QUEEN_ANT:
            continue
        if release is not None:
            release(ant_id, task_id)
        sends.append((ant_id, TaskRequest(task_execution_id=task_id, job_request_id=request_id, task_type="",
                                          attempt=attempt, action=ACTION_CANCEL, ant_id=ant_id)))  # fmt: skip
    if sends:
        transport.send_tasks(sends)
