"""The user's controls of a request (``jobs.services.control``), each recorded in the audit log:
the API and the web pages call these, the queen calls ``control`` itself."""

from typing import Any

from jobs.models import JobRequest, TaskExecution
from jobs.services import control
from orgs import audit

ACTIONS = ("cancel", "pause", "resume", "restart", "trigger")


def request_act(action: str, *, request: JobRequest, **options: Any) -> JobRequest:
    """Run ``control.request_<action>`` and record who did it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown request action {action!r}")
    done: JobRequest = getattr(control, f"request_{action}")(request=request, **options)
    data = {"hard": bool(options["hard"])} if "hard" in options else {}
    if options.get("definition") is not None:
        data["definition_id"] = options["definition"].pk
    audit.record_change(f"JobRequest:{action.capitalize()}", done,
                        summary=f"{action} {done.job_type} #{done.pk}", data=data)  # fmt: skip
    return done


def task_cancel(*, request: JobRequest, task_type: str) -> TaskExecution:
    """``control.task_cancel``, recorded under the permission it needs (``JobRequest:Cancel``)."""
    task = control.task_cancel(request=request, task_type=task_type)
    audit.record_change("JobRequest:Cancel", request, summary=f"cancel task {task_type} of {request.job_type} "
                        f"#{request.pk}", data={"task_type": task_type, "task_execution_id": task.pk})  # fmt: skip
    return task
