"""DOT output names every task, labels edges, colours states and quotes hostile names."""

from __future__ import annotations

import pathlib

import pytest

from jobs.definition import load_definition, spec_from_dict, to_dot
from jobs.definition.dot import quote
from tests.conftest import example_paths, example_text

EXAMPLES = example_paths()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_dot_names_every_task(path: pathlib.Path) -> None:
    spec = load_definition(path.read_text())
    dot = to_dot(spec)
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    for t in spec.tasks:
        assert f'"{t.task_type}" [label="{t.task_type}"' in dot


def test_dot_edges_and_colours() -> None:
    spec = load_definition(example_text("exit-code-routing"))
    dot = to_dot(
        spec,
        {
            "prepare": "COMPLETED",
            "triage": "FAILED",
            "rerun-flaky": "EXECUTING",
            "open-ticket": "CANCELLED",
            "report": "READY",
            "cleanup": "SKIPPED",
        },
    )
    assert '"prepare" -> "triage" [label="on_completed"]' in dot
    assert '"triage" -> "rerun-flaky" [label="10", style=dashed]' in dot
    for colour in ("palegreen", "lightcoral", "lightskyblue", "orange", "lightgrey", "whitesmoke"):
        assert colour in dot


def test_dot_special_targets_do_not_clash_with_tasks() -> None:
    spec = load_definition(example_text("file-sensor"), {"JobElapsedSecs": 0, "ReadyFile": "/r"})
    dot = to_dot(spec)
    assert '"wait-for-file" -> "__wait-for-file:EXECUTING" [label="100"' in dot
    restart = load_definition(
        "job_type: j\ntasks:\n- task_type: first\n  on_exit_code:\n    2: RESTART_JOB\n", strict=False
    )
    assert '"__RESTART_JOB" [label="RESTART_JOB"' in to_dot(restart)


def test_quote_escapes() -> None:
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_hostile_names_are_quoted() -> None:
    spec = spec_from_dict({"job_type": "j", "tasks": [{"task_type": "a"}]}, strict=False)
    spec.tasks[0].task_type = 'x"; evil -> y [label="'
    dot = to_dot(spec)
    assert '"x\\"; evil -> y [label=\\""' in dot
