"""The next-task rule, table-driven, and the graph helpers over the examples."""

from __future__ import annotations

import pytest

from jobs.definition import TaskSpec, always_run_tasks, first_task, load_definition, next_step, targets
from jobs.definition.dag import NextStep, find_cycles
from tests.conftest import example_paths, example_text


def task(**kw: object) -> TaskSpec:
    return TaskSpec(task_type=str(kw.pop("task_type", "t")), **kw)  # type: ignore[arg-type]


T_ROUTES = task(
    on_completed="next",
    on_failed="cleanup",
    on_exit_code={
        "1": "one",
        "2": "EXECUTING",
        "3": "COMPLETED",
        "4": "FAILED",
        "5": "FATAL",
        "6": "ERR_DISK",
        "7": "RESTART_TASK",
        "8": "RESTART_JOB",
        "9": "PAUSE_JOB",
        "COMPLETED": "ignored-on-completed-wins",
        "CANCELLED": "after-cancel",
    },
)
T_PLAIN = task()
T_OPTIONAL = task(allow_failure=True, on_completed="next")
T_OPTIONAL_BOTH = task(allow_failure=True, on_completed="next", on_failed="cleanup")
T_OPTIONAL_LAST = task(allow_failure=True)
T_FATAL_OPT = task(allow_failure=True, on_completed="next", on_exit_code={"9": "FATAL"})
T_STATE_KEYS = task(on_exit_code={"FAILED": "fixer", "COMPLETED": "next"})
T_SPECIAL_EDGE = task(on_failed="RESTART_JOB", on_completed="COMPLETED")

RULES = [
    # (task, state, exit code, expected)
    (T_ROUTES, "FAILED", "1", NextStep("task", "one", "FAILED")),
    (T_ROUTES, "COMPLETED", 1, NextStep("task", "one", "COMPLETED")),
    (T_ROUTES, "FAILED", "2", NextStep("repeat", "t", "EXECUTING")),
    (T_ROUTES, "FAILED", "3", NextStep("task", "next", "COMPLETED")),
    (T_ROUTES, "COMPLETED", "4", NextStep("task", "cleanup", "FAILED")),
    (T_ROUTES, "FAILED", "5", NextStep("task", "cleanup", "FAILED", no_retry=True)),
    (T_ROUTES, "FAILED", "6", NextStep("task", "cleanup", "FAILED", error_code="ERR_DISK")),
    (T_ROUTES, "FAILED", "7", NextStep("restart_task", "t", "FAILED")),
    (T_ROUTES, "FAILED", "8", NextStep("restart_job", None, "FAILED")),
    (T_ROUTES, "COMPLETED", "9", NextStep("pause_job", None, "COMPLETED")),
    (T_ROUTES, "COMPLETED", "0", NextStep("task", "next", "COMPLETED")),
    (T_ROUTES, "FAILED", "42", NextStep("task", "cleanup", "FAILED")),
    (T_ROUTES, "completed", None, NextStep("task", "next", "COMPLETED")),
    (T_ROUTES, "CANCELLED", None, NextStep("task", "after-cancel", "CANCELLED")),
    (T_PLAIN, "CANCELLED", None, NextStep("end", None, "CANCELLED", "FAILED")),
    (T_ROUTES, "FAILED", "CANCELLED", NextStep("task", "after-cancel", "FAILED")),
    (T_ROUTES, "SKIPPED", "SKIPPED", NextStep("task", "next", "COMPLETED")),
    (T_PLAIN, "COMPLETED", "0", NextStep("end", None, "COMPLETED", "COMPLETED")),
    (T_PLAIN, "FAILED", "1", NextStep("end", None, "FAILED", "FAILED")),
    (T_OPTIONAL, "FAILED", "1", NextStep("task", "next", "FAILED")),
    (T_OPTIONAL, "COMPLETED", "0", NextStep("task", "next", "COMPLETED")),
    (T_OPTIONAL_BOTH, "FAILED", "1", NextStep("task", "cleanup", "FAILED")),
    (T_OPTIONAL_LAST, "FAILED", "1", NextStep("end", None, "FAILED", "COMPLETED")),
    (T_FATAL_OPT, "FAILED", "9", NextStep("end", None, "FAILED", "FAILED", no_retry=True)),
    (T_STATE_KEYS, "FAILED", "1", NextStep("task", "fixer", "FAILED")),
    (T_STATE_KEYS, "COMPLETED", "0", NextStep("task", "next", "COMPLETED")),
    (T_SPECIAL_EDGE, "FAILED", "1", NextStep("restart_job", None, "FAILED")),
    (T_SPECIAL_EDGE, "COMPLETED", "0", NextStep("end", None, "COMPLETED", "COMPLETED")),
    (
        task(on_exit_code={"1": "FATAL"}),
        "COMPLETED",
        "1",
        NextStep("end", None, "FAILED", "FAILED", no_retry=True),
    ),
    (task(on_exit_code={"1": "ERR_X"}), "FAILED", "1", NextStep("end", None, "FAILED", "FAILED", "ERR_X")),
    (task(on_exit_code={"1": "COMPLETED"}), "FAILED", "1", NextStep("end", None, "COMPLETED", "COMPLETED")),
]


@pytest.mark.parametrize(("t", "state", "code", "expected"), RULES)
def test_next_step_rules(t: TaskSpec, state: str, code: object, expected: NextStep) -> None:
    assert next_step(t, state, code) == expected  # type: ignore[arg-type]


def test_routing_example_routes_by_exit_code() -> None:
    spec = load_definition(example_text("exit-code-routing"))
    triage = spec.task("triage")
    assert triage is not None
    for code, target in (("10", "rerun-flaky"), ("20", "open-ticket")):
        assert next_step(triage, "FAILED", code).task_type == target
        assert next_step(triage, "COMPLETED", code).task_type == target
    assert next_step(triage, "COMPLETED", "0") == NextStep("task", "report", "COMPLETED")
    assert next_step(triage, "FAILED", "1") == NextStep("end", None, "FAILED", "FAILED")
    assert first_task(spec).task_type == "prepare"  # type: ignore[union-attr]
    assert always_run_tasks(spec, {"prepare", "triage"}) == ["cleanup"]
    assert always_run_tasks(spec, {"cleanup"}) == []


def test_sensor_example_rules() -> None:
    spec = load_definition(example_text("file-sensor"), {"JobElapsedSecs": 0, "ReadyFile": "/r"})
    wait, process = spec.tasks
    assert next_step(wait, "FAILED", "100") == NextStep("repeat", "wait-for-file", "EXECUTING")
    assert next_step(wait, "COMPLETED", "0") == NextStep("task", "process", "COMPLETED")
    assert next_step(wait, "FAILED", "1") == NextStep("end", None, "FAILED", "FAILED")
    assert next_step(process, "COMPLETED", "0") == NextStep("end", None, "COMPLETED", "COMPLETED")
    assert targets(wait) == {"EXECUTING", "process"}


FIRST_TASKS = {
    "approval-gate": "build",
    "ci-pipeline": "checkout",
    "docker-job": "build",
    "etl-job": "extract",
    "exit-code-routing": "prepare",
    "fan-out-deploy": "list-regions",
    "file-sensor": "wait-for-file",
    "fork-await": "split",
    "fork-worker": "work",
    "http-api-job": "read",
    "nightly-cron": "housekeeping",
    "sub-workflow": "process-shard",
    "web-job": "process",
}


def test_every_example_has_its_first_task_listed() -> None:
    assert sorted(FIRST_TASKS) == [p.stem for p in example_paths()]


@pytest.mark.parametrize(("name", "first"), sorted(FIRST_TASKS.items()))
def test_first_task_of_examples(name: str, first: str) -> None:
    spec = load_definition(example_text(name))
    assert first_task(spec).task_type == first  # type: ignore[union-attr]
    assert find_cycles(spec) == []
