"""`dynamic_template_tasks: true` must come before a template `range` that generates tasks.

As in the reference: a `range` whose body declares a `task_type:` writes tasks, and a definition
doing that without the flag is refused at upload, naming the line of the `range`. A `range`
inside a script (one command per item) needs no flag.
"""

from __future__ import annotations

import re

from .errors import Problem

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_KEYWORD = re.compile(r"^-?\s*(\w+)")
_BLOCKS = frozenset({"range", "if", "with", "define", "block"})
_TASK_KEY = re.compile(r"(?m)^[ \t]*(?:-[ \t]+)?task_type[ \t]*:")


def task_generating_ranges(text: str) -> list[int]:
    """1-based lines of the `range` actions whose body declares a task."""
    stack: list[tuple[str, int, int]] = []  # keyword, end of its action, its line
    found: list[int] = []
    for match in _ACTION.finditer(text):
        body = match.group(1)
        if body.lstrip("- \t\r\n").startswith("/*"):
            continue  # a comment
        keyword = _KEYWORD.match(body.strip())
        word = keyword.group(1) if keyword else ""
        if word in _BLOCKS:
            stack.append((word, match.end(), text.count("\n", 0, match.start()) + 1))
        elif word == "end" and stack:
            kind, start, line = stack.pop()
            if kind == "range" and _TASK_KEY.search(text, start, match.start()):
                found.append(line)
    return sorted(found)


def dynamic_tasks_problems(text: str, allowed: bool) -> list[Problem]:
    if allowed:
        return []
    return [
        Problem(
            "the template generates tasks with range: add `dynamic_template_tasks: true` at the top "
            "level to allow it",
            field="dynamic_template_tasks",
            line=line,
        )
        for line in task_generating_ranges(text)
    ]
