"""Warnings about a definition that loads but is risky: params pasted bare into script lines.

`echo {{.Branch}}` runs whatever the request's `Branch` holds (`main; rm -rf ~`). A request
param may set any template name except the built-ins, so every other name printed into a
`script`, `before_script` or `after_script` line without a final `shellquote` is reported; the
environment form (`echo "$Branch"`) is not a template action and never is.
"""

from __future__ import annotations

import re

from .errors import TemplateError
from .template import output_actions

SAFE_LAST_FUNCTIONS = frozenset({"shellquote"})
# built-ins the queen sets from its own numbers and dates (they override params of the same name)
SAFE_BUILTINS = frozenset(
    {
        "JobID", "JobVersion", "JobRetry", "JobElapsedSecs", "JobPriority", "UserID", "OrganizationID",
        "DateYear", "DateMonth", "DateDay", "YearDay", "FullDate", "EpochSecs",
    }
)  # fmt: skip
_ARTIFACT_URL = re.compile(r"_ArtifactURL_\d+$")
_TASK_TYPE = re.compile(r"^\s*(?:-\s+)?task_type\s*:\s*(.*?)\s*$")
_SCRIPT_KEY = re.compile(r"^(\s*)(?:-\s+)?(before_script|script|after_script)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def script_lines(text: str) -> dict[int, str]:
    """1-based line numbers of the lines inside a script list, with the task each belongs to."""
    lines: dict[int, str] = {}
    task = "?"
    block_indent: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if block_indent is not None and stripped:
            inside = _indent(line) > block_indent or (
                _indent(line) == block_indent and stripped.startswith("- ") and not _SCRIPT_KEY.match(line)
            )
            if inside and not _TASK_TYPE.match(line):
                lines[number] = task
                continue
            block_indent = None
        if m := _TASK_TYPE.match(line):
            task = m.group(1).strip("'\"") or "?"
        if m := _SCRIPT_KEY.match(line):
            # the key's column: `- script:` in a list item counts from the key, not the dash
            block_indent = line.index(m.group(2))
            if m.group(3).strip():
                lines[number] = task  # `script: [...]` on one line
    return lines


def is_param_name(name: str, required_params: list[str]) -> bool:
    return name in required_params or not (name in SAFE_BUILTINS or _ARTIFACT_URL.search(name))


def shell_warnings(text: str, required_params: list[str] | None = None) -> list[str]:
    """One sentence per param printed bare into a script line: task, line and param named."""
    try:
        actions = output_actions(text)
    except TemplateError:
        return []  # the loader reports what is wrong with the template itself
    in_script = script_lines(text)
    required = list(required_params or [])
    warnings: dict[str, None] = {}  # one per task, line and param, in the order found
    for action in actions:
        task = in_script.get(action.line)
        if task is None or action.last_function in SAFE_LAST_FUNCTIONS:
            continue
        for name in action.fields:
            if is_param_name(name, required):
                warnings.setdefault(
                    f"task '{task}': line {action.line}: param '{name}' is pasted into the script unquoted; "
                    f'use "${name}" (the environment) or {{{{.{name} | shellquote}}}}'
                )
    return list(warnings)
