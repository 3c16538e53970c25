"""The template variables a definition's text uses (``{{.Name}}``, ``{{if .Name}}``), minus the
built-ins the queen sets: the names a request's params can fill, for the submit form."""

from __future__ import annotations

import re

from .lint import SAFE_BUILTINS
from .parser import builtin_params

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# `.Name` at the start of a field chain; `$x.Name` and `(f).Name` are fields of something else
_FIELD = re.compile(r"(?<![\w\)\]$.])\.([A-Za-z_][A-Za-z0-9_]*)")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')
_ARTIFACT_URL = re.compile(r"_ArtifactURL_\d+$")
BUILTINS = SAFE_BUILTINS | frozenset(builtin_params())


def template_variables(text: str, *, defined: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Names in first-seen order; ``defined`` (the definition's own variables) are left out."""
    found: dict[str, None] = {}
    for action in _ACTION.findall(text):
        if action.lstrip("-").lstrip().startswith("/*"):
            continue  # a comment
        for name in _FIELD.findall(_STRING.sub('""', action)):
            if name not in BUILTINS and name not in defined and not _ARTIFACT_URL.search(name):
                found.setdefault(name)
    return list(found)
