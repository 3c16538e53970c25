"""Job and task states (the reference system's names). Pure Python: the core and the ORM share them."""

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    STARTED = "STARTED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"
    # skip_if said true: the request is recorded but never runs.
    FILTERED = "FILTERED"
    # a MANUAL task waits for people's reviews; the request holds no ant slot meanwhile
    MANUAL_APPROVAL_REQUIRED = "MANUAL_APPROVAL_REQUIRED"


class TaskState(StrEnum):
    READY = "READY"
    STARTED = "STARTED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    MANUAL_APPROVAL_REQUIRED = "MANUAL_APPROVAL_REQUIRED"


JOB_TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.FILTERED})
JOB_RUNNING = frozenset({JobState.READY, JobState.STARTED, JobState.EXECUTING})
TASK_TERMINAL = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED})
TASK_ACTIVE = frozenset({TaskState.READY, TaskState.STARTED, TaskState.EXECUTING})


def choices(enum: type[StrEnum]) -> list[tuple[str, str]]:
    return [(m.value, m.value) for m in enum]
