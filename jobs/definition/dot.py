"""Graphviz DOT text for a job's task graph, optionally coloured by each task's state."""

from __future__ import annotations

from collections.abc import Mapping

from . import dag
from .model import JobSpec, is_special_target

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


def to_dot(spec: JobSpec, task_states: Mapping[str, str] | None = None) -> str:
    states = task_states or {}
    lines = [
        f"digraph {quote(spec.job_type or 'job')} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor=white];',
    ]
    first = dag.first_task(spec)
    specials: set[str] = set()
    for task in spec.tasks:
        attrs = [f"label={quote(task.task_type)}"]
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
