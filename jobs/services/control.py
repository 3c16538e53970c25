"""User control of work: cancel, pause, resume, restart and trigger. Whether a request may make
the move is the transitions table's answer (``jobs.domain.transitions``), not checked again here."""

from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction

from jobs.domain import transitions
from jobs.domain.messaging import get_transport
from jobs.domain.sends import cancel_on_ants
from jobs.models import JobDefinition, JobRequest
from jobs.states import JOB_TERMINAL, JobState


def _refuse(request: JobRequest, action: str) -> ValidationError:
    request.refresh_from_db(fields=["job_state"])
    return ValidationError(f"cannot {action} job request {request.pk}: it is {request.job_state}")


DEADLOCK_TRIES = 3


def request_cancel(*, request: JobRequest, reason: str = "cancelled by user") -> JobRequest:
    """Cancel a pending, paused or running request and its forked children; tasks running on
    ants are killed there."""
    for attempt in range(DEADLOCK_TRIES):
        try:
            with transaction.atomic():
                if not transitions.job_cancel(request.pk, reason):
                    raise _refuse(request, "cancel")
                on_ants = transitions.tasks_cancel(
                    request.executions.values_list("pk", flat=True), request.pk
                )
                transaction.on_commit(lambda on_ants=on_ants: _tell_ants(on_ants, request.pk))
            break
        except OperationalError as exc:
            # the queen may be finishing one of these tasks, its rows locked in the other order:
            # PostgreSQL aborts one of the two, and the cancel is simply tried again
            if attempt + 1 == DEADLOCK_TRIES or getattr(exc.__cause__, "sqlstate", None) != "40P01":
                raise
    for child in JobRequest.objects.filter(parent=request).exclude(
        job_state__in=[s.value for s in JOB_TERMINAL]
    ):
        request_cancel(request=child, reason=f"parent job {request.pk} was cancelled")
    request.refresh_from_db()
    return request


def _tell_ants(on_ants: list[tuple[int, str, int]], request_id: int) -> None:
    cancel_on_ants(get_transport(), on_ants, request_id)


def request_pause(*, request: JobRequest) -> JobRequest:
    """No new task of this request starts until it is resumed; a task on an ant finishes."""
    if not transitions.job_pause(request.pk, "paused by user"):
        raise _refuse(request, "pause")
    request.refresh_from_db()
    return request


def request_resume(*, request: JobRequest) -> JobRequest:
    if not transitions.job_resume(request.pk):
        raise _refuse(request, "resume")
    request.refresh_from_db()
    return request


def request_restart(
    *, request: JobRequest, hard: bool = False, definition: JobDefinition | None = None
) -> JobRequest:
    """Run a finished request again. A soft restart reuses the tasks its last execution
    completed (except ``allow_start_if_completed`` ones); ``hard`` re-runs every task.
    ``definition`` (another version of its job type) is what it runs from now on."""
    if request.job_state == JobState.PAUSED:
        return request_resume(request=request)
    allowed = [JobState.FAILED, JobState.CANCELLED, JobState.COMPLETED]
    with transaction.atomic():
        if definition is not None and definition.pk != request.job_definition_id:
            JobRequest.objects.filter(pk=request.pk, job_state__in=allowed).update(
                job_definition=definition, job_version=definition.sem_version or str(definition.version)
            )
        if not transitions.job_requeue(
            request.pk, None, None, "restarted by user", hard=hard, count_retry=False, from_states=allowed
        ):
            raise _refuse(request, "restart")  # leaves the definition as it was
    request.refresh_from_db()
    return request


def request_trigger(*, request: JobRequest) -> JobRequest:
    """A request scheduled for later (e.g. a scheduled or cron job) runs now."""
    if not transitions.job_trigger(request.pk):
        raise _refuse(request, "trigger")
    request.refresh_from_db()
    return request
