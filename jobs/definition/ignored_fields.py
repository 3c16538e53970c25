"""Fields the reference accepts that are parsed here but not acted on yet.

A definition using one still loads (it runs as if the field were absent), and the upload answers
with a warning naming it: never a silent no-op. docs/definitions.md lists the same fields.
"""

from __future__ import annotations

from typing import Any

from .errors import Problem
from .model import JobSpec

NOT_ACTED_ON = "accepted but not acted on yet"

JOB_FIELDS: dict[str, str] = {
    "methods": "a job's methods are those of its tasks (the reference recomputes them too)",
    "resources": "job resources are not reserved (a task's resources are)",
}

# TaskSpec attribute -> why; the YAML key is the attribute name unless KEYS says otherwise.
TASK_FIELDS: dict[str, str] = {
    "helper_environment": "there is no helper container here (DOCKER and KUBERNETES copy files without one)",
    "helper": "there is no helper container here (DOCKER and KUBERNETES copy files without one)",
    "dependent_artifact_ids": "use artifact_ids or dependencies",
    "artifacts_dir": "artifacts are collected from the task's working directory",
    "cache_dir": "caches are collected from the task's working directory",
    "report_stdout": "stdout is not sent as a report",
    "execute_command_without_shell": "commands always run through a shell",
    "debug": "no extra debug output is produced",
}


def ignored_field_warnings(spec: JobSpec) -> list[Problem]:
    """One warning per field of the tables above that a definition sets."""
    out: list[Problem] = []
    for name, why in JOB_FIELDS.items():
        if getattr(spec, name):  # a false or empty value changes nothing: no warning
            out.append(Problem(f"{NOT_ACTED_ON}: {why}", field=name, line=_line_of(spec.raw, name)))
    for task in spec.tasks:
        for name, why in TASK_FIELDS.items():
            if getattr(task, name):
                out.append(
                    Problem(
                        f"{NOT_ACTED_ON}: {why}",
                        task=task.task_type or None,
                        field=name,
                        line=_line_of(task.raw, name) or task.line,
                    )
                )
    return out


def _line_of(raw: Any, key: str) -> int | None:
    line = getattr(raw, "lines", {}).get(key)
    return int(line) if line else None
