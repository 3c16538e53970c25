"""The definitions core must import without Django (ants and tests run it without a database)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = [
    "jobs.definition",
    "jobs.definition.template",
    "jobs.definition.template_funcs",
    "jobs.definition.gofmt",
    "jobs.definition.parser",
    "jobs.definition.yamlsafe",
    "jobs.definition.model",
    "jobs.definition.validate",
    "jobs.definition.dag",
    "jobs.definition.policy",
    "jobs.definition.dot",
    "jobs.definition.durations",
    "jobs.definition.errors",
    "jobs.definition.layers",
    "jobs.definition.retries",
    "jobs.definition.dynamic_tasks",
    "jobs.definition.ignored_fields",
]


def test_importing_core_does_not_import_django() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "bad = [m for m in sys.modules if m == 'django' or m.startswith('django.') or m.startswith('rest_framework')]\n"
        + "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_no_django_import_in_source() -> None:
    for path in (ROOT / "jobs" / "definition").glob("*.py"):
        text = path.read_text()
        assert "import django" not in text and "from django" not in text, path
