"""Queen-side artifact bookkeeping the engine calls. (Filled in by the artifacts work.)"""

from typing import Any

from ants.protocol import TaskResponse
from jobs.definition.model import TaskSpec
from jobs.models import JobExecution, JobRequest, TaskExecution


def template_variables(request: JobRequest, execution: JobExecution) -> dict[str, str]:
    """``<task>_ArtifactURL_<n>`` download URLs of artifacts earlier tasks of this request produced."""
    return {}


def downloads_for(request: JobRequest, execution: JobExecution, task: TaskSpec) -> list[dict[str, Any]]:
    """Artifacts the ant must download into the working directory before running ``task``
    (its ``dependencies`` and ``artifact_ids``)."""
    return []


def record_from_response(task: TaskExecution, request: JobRequest, resp: TaskResponse) -> None:
    """Store metadata of the artifacts (and the log) the ant uploaded for this task."""
