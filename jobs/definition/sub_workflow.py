"""``sub_workflow`` on a FORK_JOB task (REFERENCE.md "Newer versions"): which params the child
job gets, which of its context comes back to the parent, and whether the task waits for it.
Pure: the queen renders the task (without secrets), forks with ``child_params`` and ends the
step with ``promoted`` once the child has ended.

- ``input_params``: a list of ``{name, value}``; ``value`` is a template over the parent's
  context, rendered with the task. Only these are forwarded; absent or empty forwards nothing.
- ``output_variables``: ``{name: <child context key>, value: <parent context key>}`` entries (a
  list, or a mapping child key -> parent key); absent or empty promotes the whole child context
  under its own names.
- ``wait_for_completion``: the FORK_JOB task itself waits for the child and ends with its
  outcome (fork and await in one step).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_ENTRIES = 200
_FIELDS = frozenset({"input_params", "output_variables", "wait_for_completion"})


class SubWorkflowError(ValueError):
    """A ``sub_workflow`` field is wrong; ``field`` names it (``sub_workflow.input_params``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SubWorkflow:
    input_params: tuple[tuple[str, str], ...] = ()  # (child param, rendered value)
    output_variables: tuple[tuple[str, str], ...] = ()  # (child context key, parent context key)
    wait_for_completion: bool = False

    @classmethod
    def parse(cls, raw: Any) -> SubWorkflow:
        if not isinstance(raw, Mapping):
            raise SubWorkflowError("sub_workflow", "expected a mapping")
        unknown = sorted(str(k) for k in set(raw) - _FIELDS)
        if unknown:
            raise SubWorkflowError(f"sub_workflow.{unknown[0]}", "unknown field (input_params, "
                                   "output_variables, wait_for_completion)")  # fmt: skip
        wait = raw.get("wait_for_completion", False)
        if wait is None:
            wait = False
        if not isinstance(wait, bool):
            raise SubWorkflowError("sub_workflow.wait_for_completion", "expected true or false")
        return cls(
            input_params=_pairs(raw.get("input_params"), "input_params", values_are_names=False),
            output_variables=_pairs(raw.get("output_variables"), "output_variables", values_are_names=True),
            wait_for_completion=wait,
        )


def _pairs(raw: Any, name: str, *, values_are_names: bool) -> tuple[tuple[str, str], ...]:
    """``[{name, value}, ...]`` (or, for output_variables, ``{child: parent}``) as pairs; names
    unique."""
    where = f"sub_workflow.{name}"
    if raw is None:
        return ()
    if isinstance(raw, Mapping) and values_are_names:
        entries: list[Any] = [{"name": k, "value": v} for k, v in raw.items()]
    elif isinstance(raw, list):
        entries = raw
    else:
        shape = "a list of {name, value}" + (" or a mapping" if values_are_names else "")
        raise SubWorkflowError(where, f"expected {shape}")
    if len(entries) > MAX_ENTRIES:
        raise SubWorkflowError(where, f"at most {MAX_ENTRIES} entries, not {len(entries)}")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - {"name", "value"}:
            raise SubWorkflowError(at, "expected {name, value}")
        key, value = entry.get("name"), entry.get("value", "")
        if not isinstance(key, str) or not NAME_RE.match(key):
            raise SubWorkflowError(at, "name: required, letters, digits, '_', '.' or '-'")
        if key in seen:
            raise SubWorkflowError(at, f"duplicate name {key!r}")
        seen.add(key)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SubWorkflowError(at, "value: expected text")
        value = str(value)
        if values_are_names and not NAME_RE.match(value):
            raise SubWorkflowError(at, "value: the parent context key, letters, digits, '_', '.' or '-'")
        out.append((key, value))
    return tuple(out)


def child_params(sub: SubWorkflow) -> dict[str, str]:
    """The child job's params: ``input_params`` only (already rendered without secrets)."""
    return dict(sub.input_params)


def promoted(sub: SubWorkflow, child_context: Mapping[str, Any]) -> dict[str, Any]:
    """What of the child's context the parent's gets: the named keys under their parent names
    (a key the child did not set is left out), or the whole context when none are named."""
    if not sub.output_variables:
        return dict(child_context)
    return {parent: child_context[child] for child, parent in sub.output_variables if child in child_context}
