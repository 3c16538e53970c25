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
        assert f'"{t.task_type}" [label="{t.task_type}' in dot  # a fan-out step adds a line


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


FAN_OUT = """\
job_type: regions
tasks:
- task_type: list
  script: [echo]
  on_completed: deploy
- task_type: deploy
  script: ["echo {{.region}}"]
  fan_out: {source: Regions, item_var: region, max_parallel: 2, fail_fast: true}
  on_completed: shards
- task_type: shards
  fan_out: {source: Shards, item_var: shard, fork_job_type: test-shard}
"""


def test_a_fan_out_step_is_a_double_octagon_naming_its_item_and_limit() -> None:
    dot = to_dot(load_definition(FAN_OUT, strict=False))
    assert '"list" [label="list", penwidth=2];' in dot  # plain steps are unchanged
    assert '"deploy" [label="deploy\\n× region in Regions · max 2 · fail fast", shape=doubleoctagon];' in dot
    assert (
        '"shards" [label="shards\\n× shard in Shards · all at once · job test-shard", shape=doubleoctagon];'
        in dot
    )
    assert '"list" -> "deploy" [label="on_completed"];' in dot


def test_a_requests_dot_counts_the_instances_per_state() -> None:
    counts = {"deploy": {"COMPLETED": 12, "FAILED": 3, "EXECUTING": 5}}
    dot = to_dot(load_definition(FAN_OUT, strict=False), {"deploy": "EXECUTING"}, counts)
    assert (
        "deploy\\n× region in Regions · max 2 · fail fast\\n20 items: 12 COMPLETED, 5 EXECUTING, 3 FAILED"
        in dot
    )
    assert "fillcolor=lightskyblue" in dot
    assert (
        '"shards" [label="shards\\n× shard in Shards · all at once · job test-shard", shape=doubleoctagon];'
        in dot
    )


def test_a_wrong_fan_out_is_still_drawn() -> None:
    """An upload keeps a wrong ``fan_out`` with a warning; its picture must not break."""
    spec = spec_from_dict({"job_type": "j", "tasks": [{"task_type": "a"}]}, strict=False)
    spec.tasks[0].fan_out = {"source": 3, "max_parallel": "lots", "fail_fast": "yes"}
    dot = to_dot(spec, fan_out_counts={"a": {}})
    assert '"a" [label="a\\n× item in 3 · all at once\\n0 items", shape=doubleoctagon' in dot
