"""The executor interface and helpers shared by executors."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ants.methods import HTTP_METHODS
from ants.protocol import STATUS_COMPLETED, TaskOutcome, TaskRequest

# Names treated as secret even when the queen did not list them (see DESIGN "Rules").
SECRET_NAME_RE = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", re.IGNORECASE)
REDACTED = "****"
# Shorter secrets are never masked: masking them would mask parts of ordinary words and so
# reveal them (``about`` -> ``****out``). Configs and params refuse them (docs/security.md).
MIN_SECRET_LENGTH = 4
STDOUT_TAIL_LINES = 100
MAX_LINE_CHARS = 16 * 1024

ERR_TASK_TIMEOUT = "ERR_TASK_TIMEOUT"
ERR_EXECUTOR = "ERR_EXECUTOR"
ERR_VALIDATION = "ERR_VALIDATION"


@dataclass
class ExecutionContext:
    """What an executor gets besides the request.

    ``deadline`` is a ``time.monotonic()`` value (None: no timeout). ``log(stream, line)`` must
    only ever receive already-redacted text. ``cancel_event`` is set to abort the task.
    """

    workdir: Path
    log: Callable[[str, str], None] = lambda stream, line: None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


# What an executor returns is the outcome part of the TaskResponse, declared once in the protocol.
ExecutionResult = TaskOutcome


class Executor(Protocol):
    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult: ...


class UnsupportedMethod(LookupError):
    """No executor is registered (or importable) for a task method."""


ExecutorFactory = Callable[[Any], Executor]

# Built-ins are imported lazily by dotted path so a missing optional dependency (docker,
# kubernetes) only breaks tasks of that method. Later modules plug in with register_executor().
_LAZY: dict[str, str] = {
    "SHELL": "ants.executors.shell:ShellExecutor",
    **dict.fromkeys(HTTP_METHODS, "ants.executors.http:HttpExecutor"),
    "DOCKER": "ants.executors.docker:DockerExecutor",
    "KUBERNETES": "ants.executors.kubernetes:KubernetesExecutor",
}
_FACTORIES: dict[str, ExecutorFactory] = {}
_INSTANCES: dict[tuple[str, int], Executor] = {}
_REG_LOCK = threading.Lock()


def register_executor(method: str, factory: ExecutorFactory) -> None:
    """Register ``factory(config) -> Executor`` for ``method`` (replaces any previous one)."""
    with _REG_LOCK:
        _FACTORIES[method.upper()] = factory
        for key in [k for k in _INSTANCES if k[0] == method.upper()]:
            del _INSTANCES[key]


def known_methods() -> list[str]:
    return sorted(set(_LAZY) | set(_FACTORIES))


def executor_for(method: str, config: Any = None) -> Executor:
    """The executor for ``method`` (one shared instance per method and config; thread-safe)."""
    method = (method or "").upper()
    key = (method, id(config))
    with _REG_LOCK:
        inst = _INSTANCES.get(key)
        if inst is not None:
            return inst
        factory = _FACTORIES.get(method)
    if factory is None:
        target = _LAZY.get(method)
        if target is None:
            raise UnsupportedMethod(f"unsupported method {method!r}")
        module_name, _, attr = target.partition(":")
        try:
            module = __import__(module_name, fromlist=[attr])
            factory = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise UnsupportedMethod(f"method {method!r} is not available on this ant: {exc}") from exc
    inst = factory(config)
    with _REG_LOCK:
        return _INSTANCES.setdefault(key, inst)


# -- helpers -----------------------------------------------------------------------------------


def as_str(value: Any) -> str:
    """Env/form value text: strings as is, booleans lower-case, structures as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def as_list(value: Any) -> list[str]:
    """``script`` and friends: a list of commands, or a single string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [as_str(v) for v in value if as_str(v).strip()]
    return [as_str(value)]


def as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def maskable_values(secrets: Iterable[str]) -> list[str]:
    """What to mask for these secrets, longest first (so a secret containing another is masked
    whole): each value of at least ``MIN_SECRET_LENGTH`` characters and, since output is
    masked line by line, each line of a multi-line value (a PEM key) that long."""
    values: set[str] = set()
    for secret in secrets:
        if len(secret.strip()) < MIN_SECRET_LENGTH:
            continue
        values.add(secret)
        if "\n" in secret or "\r" in secret:
            values.update(
                line.strip() for line in secret.splitlines() if len(line.strip()) >= MIN_SECRET_LENGTH
            )
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Replaces secret values with ``****`` (``maskable_values``: whole values and their lines)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = maskable_values(secrets)
        self._re = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        return self._re.sub(REDACTED, text) if self._re is not None and text else text

    @classmethod
    def for_request(cls, req: TaskRequest) -> Redactor:
        names = set(req.secret_names)
        sources: list[Mapping[str, Any]] = [
            req.variables,
            as_dict(req.spec.get("variables")),
            as_dict(req.spec.get("environment")),
        ]
        values = []
        for source in sources:
            for name, value in source.items():
                if name in names or SECRET_NAME_RE.search(name):
                    values.append(as_str(value))
        return cls(values)


def clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "...[truncated]"


# A task exports a context value by printing this marker (or writing $FORMICARY_CONTEXT_FILE).
CONTEXT_MARKER = "##formicary:context "
# ... or the reference's markers: `::add-job-context KEY::VALUE`, `::add-task-context KEY::VALUE`.
JOB_CONTEXT_MARKER = "::add-job-context "
TASK_CONTEXT_MARKER = "::add-task-context "
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OutputSink:
    """Where a task's output lines go, for every executor: secrets masked, long lines clipped,
    sent to the log; it keeps the stdout tail and the context markers the task printed
    (``markers`` for the task context, ``job_markers`` for the job context)."""

    def __init__(self, req: TaskRequest, log: Callable[[str, str], None]) -> None:
        self.redact = Redactor.for_request(req)
        self.tail: deque[str] = deque(maxlen=STDOUT_TAIL_LINES)
        self.markers: dict[str, str] = {}
        self.job_markers: dict[str, str] = {}
        self._log = log

    def emit(self, stream: str, line: str) -> None:
        if stream != "system" and line.startswith(("##", "::")):
            self._marker(line)
        shown = clip(self.redact(line))
        if stream != "system":
            self.tail.append(shown)
        self._log(stream, shown)

    def _marker(self, line: str) -> None:
        for prefix, separator, into in (
            (CONTEXT_MARKER, "=", self.markers),
            (TASK_CONTEXT_MARKER, "::", self.markers),
            (JOB_CONTEXT_MARKER, "::", self.job_markers),
        ):
            if line.startswith(prefix):
                key, sep, value = line[len(prefix) :].partition(separator)
                if sep and ENV_NAME_RE.match(key.strip()):
                    into[key.strip()] = value.strip()
                return


def env_name(name: str) -> str:
    """``name`` as a valid environment name: other characters become ``_``, a leading digit
    gets one before it; empty when nothing of it is usable."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not cleaned.strip("_"):
        return ""
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def task_variables(req: TaskRequest, workdir: str, context_file: str) -> dict[str, str]:
    """A task's environment: request variables (params, configs, built-ins) < spec variables <
    environment, names made valid (``env_name``), then the ``FORMICARY_*`` values. Params are
    always here, so a script can use ``"$Branch"`` instead of pasting ``{{.Branch}}``."""
    env: dict[str, str] = {}
    for source in (req.variables, as_dict(req.spec.get("variables")), as_dict(req.spec.get("environment"))):
        for name, value in source.items():
            text = as_str(value)
            if "\0" in text:
                continue
            if ENV_NAME_RE.match(str(name)):
                env[str(name)] = text
            elif usable := env_name(str(name)):
                env.setdefault(usable, text)  # `git-branch` is `$git_branch`; a real `git_branch` wins
    env.update(
        {
            "FORMICARY_TASK_EXECUTION_ID": str(req.task_execution_id),
            "FORMICARY_ATTEMPT": str(req.attempt),
            "FORMICARY_JOB_REQUEST_ID": str(req.job_request_id),
            "FORMICARY_JOB_EXECUTION_ID": str(req.job_execution_id),
            "FORMICARY_JOB_TYPE": req.job_type,
            "FORMICARY_TASK_TYPE": req.task_type,
            "FORMICARY_WORKDIR": workdir,
            "FORMICARY_CONTEXT_FILE": context_file,
        }
    )
    return env


def result_from_answer(
    answer: Mapping[str, Any], redact: Callable[[str], str], log: Callable[[str, str], None], who: str
) -> ExecutionResult:
    """The result a remote worker reported (a websocket client, a messaging worker): its output
    is logged masked, and a FAILED answer without a reason says who reported it."""
    stdout = [clip(redact(line)) for line in answer.get("stdout", [])]
    for line in stdout:
        log("stdout", line)
    status = answer["status"]
    exit_code = answer.get("exit_code")
    result = ExecutionResult(
        status=status,
        exit_code=exit_code if exit_code is not None else ("0" if status == STATUS_COMPLETED else None),
        exit_message=redact(answer.get("exit_message", "")),
        error_code=answer.get("error_code", ""),
        error_message=redact(answer.get("error_message", "")),
        task_context=answer.get("task_context", {}),
        job_context=answer.get("job_context", {}),
        stdout=stdout[-STDOUT_TAIL_LINES:],
    )
    if status != STATUS_COMPLETED and not result.error_code and not result.error_message:
        result.error_message = f"the {who} reported {status}"
    return result
