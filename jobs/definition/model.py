"""A parsed job definition as plain dataclasses (the reference's JobDefinition / TaskDefinition keys).

Durations are float seconds. `raw` keeps the mapping as written (after template rendering), so
nothing the user wrote is lost even where we do not model it yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ants import methods as task_methods

from .errors import Problem

DEFAULT_METHOD = "KUBERNETES"  # the reference's default when a task names no method

METHODS = task_methods.METHODS  # every method the reference accepts, one list for queen and ants
HTTP_METHODS = frozenset(task_methods.HTTP_METHODS)

# Targets that are not task names. EXECUTING / RESTART_* / PAUSE_JOB are actions, not graph edges.
STATE_TARGETS = frozenset({"COMPLETED", "FAILED", "FATAL"})
ACTION_TARGETS = frozenset({"EXECUTING", "RESTART_TASK", "RESTART_JOB", "PAUSE_JOB"})
SPECIAL_TARGETS = STATE_TARGETS | ACTION_TARGETS


def is_special_target(target: str) -> bool:
    return target in SPECIAL_TARGETS or (target.startswith("ERR_") and len(target) > 4)


@dataclass
class TaskSpec:
    task_type: str
    method: str = DEFAULT_METHOD
    method_given: bool = False
    description: str | None = None
    on_completed: str | None = None
    on_failed: str | None = None
    on_exit_code: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    before_script: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    after_script: list[str] = field(default_factory=list)
    timeout: float | None = None
    retry: int = 0
    delay_between_retries: float | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    artifact_ids: list[str] = field(default_factory=list)
    dependent_artifact_ids: list[str] = field(default_factory=list)
    except_: str | None = None
    allow_failure: bool = False
    allow_start_if_completed: bool = False
    always_run: bool = False
    tags: list[str] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    services: list[dict[str, Any]] = field(default_factory=list)
    notify: dict[str, Any] = field(default_factory=dict)
    fork_job_type: str | None = None
    fork_job_version: str | None = None
    await_forked_tasks: list[str] = field(default_factory=list)
    messaging_request_queue: str | None = None
    messaging_reply_queue: str | None = None
    container: dict[str, Any] = field(default_factory=dict)
    helper: dict[str, Any] = field(default_factory=dict)
    working_dir: str | None = None
    artifacts_dir: str | None = None
    cache_dir: str | None = None
    privileged: bool = False
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    affinity: dict[str, Any] = field(default_factory=dict)
    tolerations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    network_mode: str | None = None
    service_account: str | None = None
    report_stdout: bool = False
    execute_command_without_shell: bool = False
    debug: bool = False
    resources: dict[str, Any] = field(default_factory=dict)
    pause_time: float | None = None
    job_version: str | None = None
    fan_out: dict[str, Any] = field(default_factory=dict)
    sub_workflow: dict[str, Any] = field(default_factory=dict)
    # the reference's executor options and newer keys (see docs/definitions.md for what acts)
    helper_environment: dict[str, str] = field(default_factory=dict)
    cost_factor: float | None = None
    artifact_key_prefix: str | None = None
    retry_backoff_policy: dict[str, Any] = field(default_factory=dict)  # retries.read_policy's shape
    approval_policy: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def effective_url(self) -> str | None:
        """The HTTP URL: `url`, else the first script line (the reference's sensor-job style)."""
        if self.url:
            return self.url
        return self.script[0].strip() if self.script and self.script[0].strip() else None

    def is_skipped_by_except(self) -> bool:
        """The reference skips a task when its rendered `except` contains "true"."""
        return bool(self.except_) and "true" in (self.except_ or "")

    def to_dict(self) -> dict[str, Any]:
        out = _as_dict(self, skip={"raw", "line"})
        out["except"] = out.pop("except_")
        return out

    def to_wire(self) -> dict[str, Any]:
        """``to_dict`` made once per spec, for the ants; read-only. A static definition's specs
        are shared by all its dispatches, and copying one was a fifteenth of a queen's CPU."""
        wire = self.__dict__.get("_wire")
        if wire is None:
            wire = self.__dict__["_wire"] = self.to_dict()
        return wire


@dataclass
class JobSpec:
    job_type: str
    tasks: list[TaskSpec] = field(default_factory=list)
    description: str | None = None
    url: str | None = None
    platform: str | None = None
    max_concurrency: int | None = None
    required_params: list[str] = field(default_factory=list)
    cron_trigger: str | None = None
    skip_if: str | None = None
    retry: int = 0
    delay_between_retries: float | None = None
    hard_reset_after_retries: int | None = None
    timeout: float | None = None
    public_plugin: bool = False
    sem_version: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    notify: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    retry_backoff_policy: dict[str, Any] = field(default_factory=dict)  # retries.read_policy's shape
    dynamic_template_tasks: bool = False
    webhook: dict[str, Any] = field(default_factory=dict)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)

    def task(self, task_type: str) -> TaskSpec | None:
        for t in self.tasks:
            if t.task_type == task_type:
                return t
        return None

    def task_types(self) -> list[str]:
        return [t.task_type for t in self.tasks]

    def is_skipped(self) -> bool:
        """`skip_if` rendered to something containing "true": the request is filtered, not run."""
        return bool(self.skip_if) and "true" in (self.skip_if or "")

    def to_dict(self) -> dict[str, Any]:
        out = _as_dict(self, skip={"raw", "tasks", "warnings"})
        out["tasks"] = [t.to_dict() for t in self.tasks]
        out["warnings"] = [w.to_dict() for w in self.warnings]
        return out


def _as_dict(obj: Any, skip: set[str]) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in skip}


def _plain(v: Any) -> Any:
    """Copy into plain JSON types (our YAML loader hands out dict/list subclasses)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v
