"""DOT output names every task, labels edges, colours states and quotes hostile names."""

from __future__ import annotations

import pathlib

import pytest

from jobs.definition import load_definition, spec_from_dict, to_dot
from jobs.definition.dot import quote

EXAMPLES = sorted(pathlib.Path("/work/shared/examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_dot_names_every_task(path: pathlib.Path) -> None:
    spec = load_definition(path.read_text())
    dot = to_dot(spec)
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    for t in spec.tasks:
        assert f'"{t.task_type}" [label="{t.task_type}"' in dot


def test_dot_edges_and_colours() -> None:
    spec = load_definition((EXAMPLES[0].parent / "taco-job.yaml").read_text())
    dot = to_dot(
        spec,
        {
            "allocate": "COMPLETED",
            "check-date": "FAILED",
            "monday": "EXECUTING",
            "party": "CANCELLED",
            "friday": "READY",
            "deallocate": "SKIPPED",
        },
    )
    assert '"allocate" -> "check-date" [label="on_completed"]' in dot
    assert '"check-date" -> "monday" [label="1", style=dashed]' in dot
    for colour in ("palegreen", "lightcoral", "lightskyblue", "orange", "lightgrey", "whitesmoke"):
        assert colour in dot


def test_dot_special_targets_do_not_clash_with_tasks() -> None:
    spec = load_definition((EXAMPLES[0].parent / "sensor-job.yaml").read_text())
    dot = to_dot(spec)
    assert '"first" -> "__first:EXECUTING" [label="404"' in dot
    assert '"__RESTART_JOB" [label="RESTART_JOB"' in dot


def test_quote_escapes() -> None:
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_hostile_names_are_quoted() -> None:
    spec = spec_from_dict({"job_type": "j", "tasks": [{"task_type": "a"}]}, strict=False)
    spec.tasks[0].task_type = 'x"; evil -> y [label="'
    dot = to_dot(spec)
    assert '"x\\"; evil -> y [label=\\""' in dot
