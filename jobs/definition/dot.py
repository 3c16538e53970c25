"""Graphviz DOT text for a job's task graph, optionally coloured by each task's state. A fan-out
step (``fan_out``) is a double octagon labelled ``× <item_var> in <source>`` and its limits, so
a reader sees that it runs once per item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import dag
from .model import JobSpec, TaskSpec, is_special_target

STATE_COLORS = {
    "COMPLETED": "palegreen",
    "FAILED": "lightcoral",
    "EXECUTING": "lightskyblue",
    "STARTED": "lightskyblue",
    "READY": "lightgrey",
    "PENDING": "lightgrey",
    "SKIPPED": "whitesmoke",
    "CANCELLED": "orange",
}


def quote(text: str) -> str:
    """A DOT double-quoted ID: backslashes, quotes and newlines escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "")
    return f'"{escaped}"'


def fan_out_label(fan_out: Mapping[str, Any]) -> str:
    """The second line of a fan-out step's label: ``× region in Regions · max 2 · fail fast``.
    Read leniently: an upload with a wrong ``fan_out`` is kept with a warning and still drawn."""
    item_var = str(fan_out.get("item_var") or "item")
    source = str(fan_out.get("source") or "?")
    parts = [f"× {item_var} in {source}"]
    parallel = fan_out.get("max_parallel")
    if isinstance(parallel, int) and not isinstance(parallel, bool) and parallel > 0:
        parts.append(f"max {parallel}")
    else:
        parts.append("all at once")
    if fan_out.get("fail_fast") is True:
        parts.append("fail fast")
    if fan_out.get("fork_job_type"):
        parts.append(f"job {fan_out['fork_job_type']}")
    return " · ".join(parts)


def fan_out_counts_label(counts: Mapping[str, int]) -> str:
    """A request's instances of one step: ``20 items: 12 COMPLETED, 3 FAILED, 5 EXECUTING``."""
    total = sum(counts.values())
    per_state = ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])))
    return f"{total} item{'' if total == 1 else 's'}" + (f": {per_state}" if per_state else "")


def _node_attrs(task: TaskSpec, counts: Mapping[str, int] | None) -> list[str]:
    if not task.fan_out or not isinstance(task.fan_out, Mapping):
        return [f"label={quote(task.task_type)}"]
    label = f"{task.task_type}\n{fan_out_label(task.fan_out)}"
    if counts is not None:
        label += f"\n{fan_out_counts_label(counts)}"
    return [f"label={quote(label)}", "shape=doubleoctagon"]


def to_dot(
    spec: JobSpec,
    task_states: Mapping[str, str] | None = None,
    fan_out_counts: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """``fan_out_counts``: per fan-out step, how many of its instances are in each state (a
    request's picture); a step without an entry is drawn without counts."""
    states = task_states or {}
    counts = fan_out_counts or {}
    lines = [
        f"digraph {quote(spec.job_type or 'job')} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor=white];',
    ]
    first = dag.first_task(spec)
    specials: set[str] = set()
    for task in spec.tasks:
        attrs = _node_attrs(task, counts.get(task.task_type))
        state = states.get(task.task_type)
        if state:
            attrs.append(f"fillcolor={STATE_COLORS.get(state.upper(), 'white')}")
            attrs.append(f"tooltip={quote(state.upper())}")
        if first is not None and task is first:
            attrs.append("penwidth=2")
        if task.always_run:
            attrs.append("peripheries=2")
        lines.append(f"  {quote(task.task_type)} [{', '.join(attrs)}];")
    for task in spec.tasks:
        for label, target in dag.labelled_edges(task):
            node = target
            if is_special_target(target):
                # Own ids (a task could be called "COMPLETED"); per-task for actions that loop back.
                node = (
                    f"__{task.task_type}:{target}"
                    if target in ("EXECUTING", "RESTART_TASK")
                    else f"__{target}"
                )
                if node not in specials:
                    specials.add(node)
                    lines.append(f"  {quote(node)} [label={quote(target)}, shape=ellipse, style=dashed];")
            style = (
                ", style=dashed"
                if label == "on_failed" or (label != "on_completed" and target != task.on_completed)
                else ""
            )
            lines.append(f"  {quote(task.task_type)} -> {quote(node)} [label={quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
