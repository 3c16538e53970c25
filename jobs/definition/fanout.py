"""Fan-out (``fan_out`` on a task): one instance per item of a JSON array in the job context,
at most ``max_parallel`` at once, and what the step is once its instances end. Pure: the queen
creates the instances, starts the ones ``to_start`` names and ends the step with ``outcome``.

Without ``fork_job_type`` each instance is a task execution of its own on any fitting ant (mode
``task``); with it, each is a child job (mode ``job``). The item is ``{{.<item_var>}}`` in the
instance's templates and an environment variable of that name. Results go into the context as
the reference names them: ``<item_var>_<i>_status``, ``_exit_code``, ``_error_code``,
``_error_message``, ``_<key>`` for each key an instance exported, and ``FanOutItemCount``,
``FanOutSource``, ``FanOutMode``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_ITEMS = 10_000
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RUNNING = frozenset({"READY", "STARTED", "EXECUTING"})
FAILED_STATES = frozenset({"FAILED", "CANCELLED"})


INSTANCE_INFIX = "-fo-"
_INSTANCE_RE = re.compile(r"^(.+)-fo-(\d+)$")


def instance_type(step: str, index: int) -> str:
    """An instance's own task type, as the reference names it."""
    return f"{step}{INSTANCE_INFIX}{index}"


def step_of(task_type: str) -> str | None:
    """The step an instance's task type names (None when it is not one)."""
    found = _INSTANCE_RE.match(task_type)
    return found.group(1) if found else None


class FanOutError(ValueError):
    """A ``fan_out`` field or its source is wrong; the message names it."""


@dataclass(frozen=True)
class FanOut:
    source: str
    item_var: str
    max_parallel: int = 0  # 0: all at once
    fail_fast: bool = False
    fork_job_type: str = ""
    fork_job_version: str = ""

    @property
    def mode(self) -> str:
        return "job" if self.fork_job_type else "task"

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> FanOut:
        if not isinstance(raw, Mapping):
            raise FanOutError("fan_out: expected a mapping")
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise FanOutError(f"fan_out.{unknown[0]}: unknown field")
        names = {}
        for name in ("source", "item_var"):
            value = raw.get(name)
            if not isinstance(value, str) or not NAME_RE.match(value):
                raise FanOutError(f"fan_out.{name}: required, a name of letters, digits and _")
            names[name] = value
        parallel = raw.get("max_parallel", 0)
        if isinstance(parallel, bool) or not isinstance(parallel, int) or not 0 <= parallel <= MAX_ITEMS:
            raise FanOutError(f"fan_out.max_parallel: expected a whole number from 0 to {MAX_ITEMS}")
        fail_fast = raw.get("fail_fast", False)
        if not isinstance(fail_fast, bool):
            raise FanOutError("fan_out.fail_fast: expected true or false")
        fork = {}
        for name in ("fork_job_type", "fork_job_version"):
            value = raw.get(name, "")
            if not isinstance(value, str):
                raise FanOutError(f"fan_out.{name}: expected text")
            fork[name] = value.strip()
        if fork["fork_job_version"] and not fork["fork_job_type"]:
            raise FanOutError("fan_out.fork_job_version: needs fork_job_type")
        return cls(max_parallel=parallel, fail_fast=fail_fast, **names, **fork)


_FIELDS = {"source", "item_var", "max_parallel", "fail_fast", "fork_job_type", "fork_job_version"}


def items_of(context: Mapping[str, Any], source: str) -> list[Any]:
    """The items of ``source`` in the job context: a list, or text holding a JSON array."""
    if source not in context or context[source] is None:
        raise FanOutError(f"fan_out.source {source!r} is not in the job context")
    value = context[source]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise FanOutError(f"fan_out.source {source!r} is not a JSON array: {exc}") from None
    if not isinstance(value, list):
        raise FanOutError(f"fan_out.source {source!r} is not a JSON array (it is {type(value).__name__})")
    if len(value) > MAX_ITEMS:
        raise FanOutError(f"fan_out.source {source!r} has {len(value)} items (at most {MAX_ITEMS})")
    return value


def item_text(item: Any) -> str:
    """How an item reads in templates and the environment: text as is, anything else as JSON."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


@dataclass(frozen=True)
class Instance:
    index: int
    state: str = ""  # "" not created yet
    exit_code: str = ""
    error_code: str = ""
    error_message: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


def to_start(fan_out: FanOut, instances: Sequence[Instance], *, failed_fast: bool = False) -> list[int]:
    """Indices of the instances to create now, in order, within ``max_parallel``; none once
    ``fail_fast`` has cut the step."""
    if failed_fast:
        return []
    waiting = [i.index for i in instances if not i.state]
    if not fan_out.max_parallel:
        return waiting
    running = sum(1 for i in instances if i.state in RUNNING)
    return waiting[: max(fan_out.max_parallel - running, 0)]


def to_cancel(fan_out: FanOut, instances: Sequence[Instance]) -> list[int]:
    """With ``fail_fast``, the running siblings to cancel once one failed."""
    if not fan_out.fail_fast or not any(i.state in FAILED_STATES for i in instances):
        return []
    return [i.index for i in instances if i.state in RUNNING]


@dataclass(frozen=True)
class StepOutcome:
    state: str  # "" while instances run or wait; COMPLETED or FAILED once all ended
    error_code: str = ""
    error_message: str = ""


def outcome(fan_out: FanOut, instances: Sequence[Instance], *, allow_failure: bool = False) -> StepOutcome:
    """The step ends when every instance ended (or, after a ``fail_fast`` failure, when none runs
    any more): COMPLETED if all completed or failures are allowed, else FAILED naming the first
    failed item. An empty fan-out completes at once."""
    failed = [i for i in instances if i.state in FAILED_STATES]
    cut = fan_out.fail_fast and failed
    if any(i.state in RUNNING for i in instances) or (not cut and any(not i.state for i in instances)):
        return StepOutcome("")
    if failed and not allow_failure:
        # the first that failed by itself names the cause, not a sibling fail_fast cancelled
        first = min(failed, key=lambda i: (i.state == "CANCELLED", i.index))
        why = first.error_message or f"ended {first.state}"
        cancelled = sum(1 for i in failed if i.state == "CANCELLED")
        count = len(failed) - cancelled if cut and cancelled < len(failed) else len(failed)
        also = f" ({cancelled} cancelled)" if cut and cancelled and count < len(failed) else ""
        return StepOutcome(
            "FAILED", first.error_code or "ERR_FAN_OUT_ITEM_FAILED",
            f"{count} of {len(instances)} fan-out items failed{also}; item {first.index}: {why}",
        )  # fmt: skip
    return StepOutcome("COMPLETED")


def aggregate(fan_out: FanOut, instances: Sequence[Instance]) -> dict[str, Any]:
    """The step's context: each instance's results under its index, and the fan-out's figures."""
    out: dict[str, Any] = {}
    for i in instances:
        prefix = f"{fan_out.item_var}_{i.index}_"
        if not i.state:
            continue
        out.update({f"{prefix}{k}": v for k, v in i.context.items()})
        out.update({
            f"{prefix}status": i.state, f"{prefix}exit_code": i.exit_code,
            f"{prefix}error_code": i.error_code, f"{prefix}error_message": i.error_message,
        })  # fmt: skip
    out.update(
        {"FanOutItemCount": len(instances), "FanOutSource": fan_out.source, "FanOutMode": fan_out.mode}
    )
    return out


def to_restart(instances: Sequence[Instance]) -> list[int]:
    """A restart of the step runs again only the instances that did not complete."""
    return [i.index for i in instances if i.state not in ("COMPLETED", "SKIPPED")]
