"""Versioned JSON messages exchanged by queens and ants.

Every message is a flat JSON object with a ``"version"`` field (``PROTOCOL_VERSION``) and
snake_case field names matching the reference system. ``from_json`` validates everything it
reads: malformed input of any kind (bytes that are not UTF-8, text that is not JSON, a wrong
version, a missing field, a field of the wrong type, an unknown enum value) raises
``ProtocolError`` naming the message and field, never anything else. Unknown extra fields are
ignored so a newer peer can add optional fields without breaking an older one.

Fields with a default are optional on the wire; fields without one are required.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

PROTOCOL_VERSION = 1

# TaskRequest.action values.
ACTION_EXECUTE = "EXECUTE"
ACTION_CANCEL = "CANCEL"
ACTION_PING = "PING"
ACTION_TERMINATE_CONTAINER = "TERMINATE_CONTAINER"
ACTION_LIST_CONTAINERS = "LIST_CONTAINERS"
ACTIONS = frozenset(
    {ACTION_EXECUTE, ACTION_CANCEL, ACTION_PING, ACTION_TERMINATE_CONTAINER, ACTION_LIST_CONTAINERS}
)

# TaskResponse.status values ("EXECUTING" acknowledges that a task started).
STATUS_EXECUTING = "EXECUTING"
STATUS_COMPLETED = "COMPLETED"
STATUS_FAILED = "FAILED"
STATUS_CANCELLED = "CANCELLED"
RESPONSE_STATUSES = frozenset({STATUS_EXECUTING, STATUS_COMPLETED, STATUS_FAILED, STATUS_CANCELLED})
FINAL_STATUSES = frozenset({STATUS_COMPLETED, STATUS_FAILED, STATUS_CANCELLED})

LOG_STREAMS = frozenset({"stdout", "stderr", "system"})


class ProtocolError(ValueError):
    """A message could not be encoded or decoded; the text names the message and field."""


M = TypeVar("M", bound="Message")


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity by default; they are not JSON and break other peers.
    raise ValueError(f"non-standard JSON constant {name}")


def _check(value: Any, tp: Any, where: str) -> Any:
    """Validate ``value`` against the (simple) annotation ``tp``; return it, normalised."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ProtocolError(f"{where}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except ProtocolError as exc:
                errors.append(str(exc))
        raise ProtocolError(errors[0] if len(errors) == 1 else f"{where}: wrong type {type(value).__name__}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ProtocolError(f"{where}: expected boolean, got {type(value).__name__}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ProtocolError(f"{where}: expected integer, got {type(value).__name__}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ProtocolError(f"{where}: expected a finite number")
            return float(value)
        raise ProtocolError(f"{where}: expected number, got {type(value).__name__}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ProtocolError(f"{where}: expected string, got {type(value).__name__}")
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError(f"{where}: expected list, got {type(value).__name__}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_check(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected object, got {type(value).__name__}")
        _key_tp, val_tp = typing.get_args(tp) or (str, Any)
        return {k: _check(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"unsupported annotation {tp!r}")  # programming error, not bad input


@dataclass(frozen=True)
class Message:
    """Base class: JSON encoding/decoding with validation."""

    # Enum-like fields: field name -> allowed values.
    _choices: ClassVar[dict[str, frozenset[str]]] = {}

    def to_dict(self) -> dict[str, Any]:
        data = {"version": PROTOCOL_VERSION}
        for f in dataclasses.fields(self):
            data[f.name] = getattr(self, f.name)
        return data

    def to_json(self) -> str:
        try:
            return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False, default=str)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"{type(self).__name__}: cannot encode: {exc}") from exc

    @classmethod
    def from_json(cls: type[M], data: str | bytes | bytearray) -> M:
        name = cls.__name__
        try:
            if isinstance(data, bytes | bytearray):
                data = bytes(data).decode("utf-8")
            if not isinstance(data, str):
                raise ProtocolError(f"{name}: expected JSON text, got {type(data).__name__}")
            obj = json.loads(data, parse_constant=_reject_constant)
        except ProtocolError:
            raise
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"{name}: not valid JSON: {exc}") from exc
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls: type[M], obj: Any) -> M:
        name = cls.__name__
        if not isinstance(obj, dict):
            raise ProtocolError(f"{name}: expected a JSON object, got {type(obj).__name__}")
        version = obj.get("version")
        if version is None:
            raise ProtocolError(f"{name}.version: missing")
        if isinstance(version, bool) or version != PROTOCOL_VERSION:
            raise ProtocolError(f"{name}.version: unsupported {version!r} (expected {PROTOCOL_VERSION})")
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            where = f"{name}.{f.name}"
            if f.name not in obj:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ProtocolError(f"{where}: missing")
                continue
            value = _check(obj[f.name], hints[f.name], where)
            allowed = cls._choices.get(f.name)
            if allowed is not None and value not in allowed:
                raise ProtocolError(f"{where}: invalid value {value!r} (expected one of {sorted(allowed)})")
            kwargs[f.name] = value
        return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


@dataclass(frozen=True)
class TaskRequest(Message):
    """Queen -> ant: run (or cancel, ping, ...) one attempt of one task execution."""

    _choices: ClassVar[dict[str, frozenset[str]]] = {"action": ACTIONS}

    task_execution_id: int
    job_request_id: int
    task_type: str
    action: str = ACTION_EXECUTE
    attempt: int = 1
    job_execution_id: int = 0
    job_type: str = ""
    job_version: str = ""
    method: str = "SHELL"
    organization_id: str = ""
    user_id: str = ""
    ant_id: str = ""
    tags: list[str] = field(default_factory=list)
    timeout_secs: float | None = None
    # The rendered task definition: script, before_script, after_script, environment,
    # variables, url, headers, query, working_dir, container, ...
    spec: dict[str, Any] = field(default_factory=dict)
    # Template/job/context values, all strings.
    variables: dict[str, str] = field(default_factory=dict)
    # Names (in variables/environment) whose values must never appear in logs.
    secret_names: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    @property
    def key(self) -> tuple[int, int]:
        """Identity of one attempt: what the ant deduplicates on."""
        return (self.task_execution_id, self.attempt)


@dataclass(frozen=True)
class TaskResponse(Message):
    """Ant -> queens: a task attempt started (EXECUTING) or ended."""

    _choices: ClassVar[dict[str, frozenset[str]]] = {"status": RESPONSE_STATUSES, "action": ACTIONS}

    task_execution_id: int
    job_request_id: int
    status: str
    attempt: int = 1
    ant_id: str = ""
    # Echo of the request's action so a queen can tell a PING reply from a task result.
    action: str = ACTION_EXECUTE
    task_type: str = ""
    exit_code: str | None = None
    exit_message: str = ""
    error_code: str = ""
    error_message: str = ""
    failed_command: str = ""
    task_context: dict[str, Any] = field(default_factory=dict)
    job_context: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    cost_factor: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.task_execution_id, self.attempt)

    @property
    def ran_secs(self) -> float | None:
        """How long the task held its slot on the ant (a final answer says)."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @classmethod
    def answering(cls, req: TaskRequest, ant_id: str, status: str, **fields: Any) -> TaskResponse:
        """The response of ``ant_id`` to ``req``: its ids, attempt, action and task type echoed."""
        return cls(task_execution_id=req.task_execution_id, job_request_id=req.job_request_id,
                   attempt=req.attempt, ant_id=ant_id, action=req.action, task_type=req.task_type,
                   status=status, **fields)  # fmt: skip


@dataclass(frozen=True)
class AntRegistration(Message):
    """Ant -> everyone: heartbeat with capacity and load (every ``heartbeat_secs``)."""

    ant_id: str
    ant_topic: str = ""
    max_capacity: int = 1
    tags: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    current_load: int = 0
    total_executed: int = 0
    # job_request_id (as a string: JSON keys) -> {task_type: state}
    allocations: dict[str, dict[str, str]] = field(default_factory=dict)
    # Time this registration was produced (each heartbeat is a new one).
    created_at: float = field(default_factory=time.time)
    ant_started_at: float = field(default_factory=time.time)
    encryption_key: str = ""
    shutting_down: bool = False
    # Set for an ant that serves one organization only (a WEBSOCKET ant a user connected):
    # the queen sends it that organization's tasks and no other's. Empty: a shared ant.
    organization_id: str = ""
    # The ant's running DOCKER/KUBERNETES containers, compact (id, name, method, image, state,
    # task/request/organization ids from their labels): what ``GET /api/executors`` shows.
    containers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LogLine(Message):
    """Ant -> queens/browsers: one line of task output."""

    _choices: ClassVar[dict[str, frozenset[str]]] = {"stream": LOG_STREAMS}

    task_execution_id: int
    job_request_id: int
    seq: int
    line: str
    attempt: int = 1
    stream: str = "stdout"
    ts: float = field(default_factory=time.time)


__all__ = [
    "ACTIONS",
    "ACTION_CANCEL",
    "ACTION_EXECUTE",
    "ACTION_LIST_CONTAINERS",
    "ACTION_PING",
    "ACTION_TERMINATE_CONTAINER",
    "FINAL_STATUSES",
    "LOG_STREAMS",
    "PROTOCOL_VERSION",
    "RESPONSE_STATUSES",
    "STATUS_CANCELLED",
    "STATUS_COMPLETED",
    "STATUS_EXECUTING",
    "STATUS_FAILED",
    "AntRegistration",
    "LogLine",
    "Message",
    "ProtocolError",
    "TaskRequest",
    "TaskResponse",
]
