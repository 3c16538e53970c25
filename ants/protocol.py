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
import functools
import json
import math
import time
import types
import typing
from collections.abc import Callable
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


_Check = Callable[[Any, str], Any]


def _check_any(value: Any, where: str) -> Any:
    return value


def _check_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ProtocolError(f"{where}: expected boolean, got {type(value).__name__}")


def _check_int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ProtocolError(f"{where}: expected integer, got {type(value).__name__}")


def _check_float(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ProtocolError(f"{where}: expected a finite number")
        return float(value)
    raise ProtocolError(f"{where}: expected number, got {type(value).__name__}")


def _check_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise ProtocolError(f"{where}: expected string, got {type(value).__name__}")


_SIMPLE: dict[Any, _Check] = {Any: _check_any, bool: _check_bool, int: _check_int, float: _check_float,
                              str: _check_str}  # fmt: skip


@functools.cache
def _checker(tp: Any) -> _Check:
    """The validator of the (simple) annotation ``tp``: ``check(value, where)`` returns the value,
    normalised, or raises ``ProtocolError`` naming ``where``. Built once per annotation: looking
    the annotation over for every value was a sixth of the ant's CPU."""
    if tp in _SIMPLE:
        return _SIMPLE[tp]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        options = [_checker(arg) for arg in args if arg is not type(None)]

        def check_union(value: Any, where: str) -> Any:
            if value is None:
                if nullable:
                    return None
                raise ProtocolError(f"{where}: must not be null")
            errors = []
            for option in options:
                try:
                    return option(value, where)
                except ProtocolError as exc:
                    errors.append(str(exc))
            raise ProtocolError(
                errors[0] if len(errors) == 1 else f"{where}: wrong type {type(value).__name__}"
            )

        return check_union
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        item = _checker(item_tp)

        def check_list(value: Any, where: str) -> list[Any]:
            if not isinstance(value, list):
                raise ProtocolError(f"{where}: expected list, got {type(value).__name__}")
            if item is _check_any:
                return list(value)
            return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

        return check_list
    if origin is dict:
        _key_tp, val_tp = typing.get_args(tp) or (str, Any)
        val = _checker(val_tp)

        def check_dict(value: Any, where: str) -> dict[Any, Any]:
            if not isinstance(value, dict):
                raise ProtocolError(f"{where}: expected object, got {type(value).__name__}")
            if val is _check_any:
                return dict(value)
            return {k: val(v, f"{where}.{k}") for k, v in value.items()}

        return check_dict
    raise TypeError(f"unsupported annotation {tp!r}")  # programming error, not bad input


# made once: json.dumps and json.loads with options build a new coder on every call
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class Message:
    """Base class: JSON encoding/decoding with validation. Not a dataclass itself (it has no
    fields), so messages may be frozen (requests, registrations) or not (``TaskResponse``, which
    is a ``TaskOutcome`` the worker fills in)."""

    # Enum-like fields: field name -> allowed values.
    _choices: ClassVar[dict[str, frozenset[str]]] = {}
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every message class is a dataclass

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": PROTOCOL_VERSION}
        # a class is hashable; mypy checks Message instances' __hash__ instead (mypy 1.13)
        for name in _field_names(type(self)):  # type: ignore[arg-type]
            data[name] = getattr(self, name)
        return data

    def to_json(self) -> str:
        try:
            return _ENCODER.encode(self.to_dict())
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
            obj = _DECODER.decode(data)
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
        kwargs: dict[str, Any] = {}
        for plan in _plan(cls):  # type: ignore[arg-type]  # (see to_dict)
            if plan.name not in obj:
                if plan.required:
                    raise ProtocolError(f"{plan.where}: missing")
                continue
            value = plan.check(obj[plan.name], plan.where)
            if plan.allowed is not None and value not in plan.allowed:
                raise ProtocolError(
                    f"{plan.where}: invalid value {value!r} (expected one of {sorted(plan.allowed)})"
                )
            kwargs[plan.name] = value
        return cls(**kwargs)


class _Field(typing.NamedTuple):
    name: str
    where: str  # "TaskRequest.attempt": what an error names
    required: bool
    check: _Check
    allowed: frozenset[str] | None


@functools.cache
def _field_names(cls: type[Message]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _plan(cls: type[Message]) -> tuple[_Field, ...]:
    """A message class's fields with their validators, worked out once per class."""
    hints = typing.get_type_hints(cls)
    return tuple(
        _Field(
            name=f.name,
            where=f"{cls.__name__}.{f.name}",
            required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            check=_checker(hints[f.name]),
            allowed=cls._choices.get(f.name),
        )
        for f in dataclasses.fields(cls)
    )


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
    # The start time of the ant process it is meant for (its registration's ``ant_started_at``):
    # a restarted ant drops what was sent to its previous run. 0: any.
    ant_started_at: float = 0.0
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


@dataclass(kw_only=True)
class TaskOutcome:
    """How a task attempt ended: what an executor returns (``ants.executors.base.ExecutionResult``
    is this class; the worker and its hooks fill it in) and the body of the ``TaskResponse``."""

    status: str = STATUS_COMPLETED
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

    def outcome(self) -> dict[str, Any]:
        """The outcome's fields by name (a ``TaskResponse`` takes them as they are)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TaskOutcome)}


@dataclass
class TaskResponse(Message, TaskOutcome):
    """Ant -> queens: a task attempt started (EXECUTING) or ended: its ids and the ``TaskOutcome``."""

    _choices: ClassVar[dict[str, frozenset[str]]] = {"status": RESPONSE_STATUSES, "action": ACTIONS}

    task_execution_id: int
    job_request_id: int
    status: str = field(kw_only=True)  # required on the wire (the outcome's default is for executors)
    attempt: int = 1
    ant_id: str = ""
    # Echo of the request's action so a queen can tell a PING reply from a task result.
    action: str = ACTION_EXECUTE
    task_type: str = ""
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
    # the ant that printed it (names the key of a sealed log entry; empty from older ants)
    ant_id: str = ""


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
