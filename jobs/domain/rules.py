"""Names the queen's pipelines share: which methods the queen runs itself, which
states count as running, which columns the hot paths never read."""

from django.conf import settings

from ants.methods import QUEEN_METHODS as QUEEN_METHODS  # the queen runs these itself
from jobs.definition.model import TaskSpec
from jobs.states import JOB_RUNNING, TaskState

RUNNING = [TaskState.STARTED.value, TaskState.EXECUTING.value]
JOB_RUNNING_VALUES = [s.value for s in JOB_RUNNING]
# The ant id recorded for tasks the queen runs itself.
QUEEN_ANT = "queen"
# Columns the hot paths never read: the parsed definition (the queen parses the text once per
# version) and the task's own results (stdout tail, context); deferring them saves decoding JSON.
HEAVY_TASK_FIELDS = (
    "job_execution__job_request__job_definition__spec", "stdout", "context", "earlier_attempts",
)  # fmt: skip


def method_of(task: TaskSpec) -> str:
    """The task's method; one the definition does not name is the deployment's default
    (KUBERNETES, as in the reference; standalone uses SHELL)."""
    return task.method if task.method_given else settings.FORMICARY_DEFAULT_METHOD
