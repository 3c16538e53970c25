"""The next-task rule, table-driven, and the graph helpers over the examples."""

from __future__ import annotations

import pathlib

import pytest

from jobs.definition import TaskSpec, always_run_tasks, first_task, load_definition, next_step, targets
from jobs.definition.dag import NextStep, find_cycles

EXAMPLES = pathlib.Path("/work/shared/examples")


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


def test_taco_job_routes_by_exit_code() -> None:
    spec = load_definition((EXAMPLES / "taco-job.yaml").read_text())
    check = spec.task("check-date")
    assert check is not None
    for code, target in (("1", "monday"), ("2", "tuesday"), ("3", "friday")):
        assert next_step(check, "FAILED", code).task_type == target
        assert next_step(check, "COMPLETED", code).task_type == target
    assert next_step(check, "COMPLETED", "0") == NextStep("task", "deallocate", "COMPLETED")
    assert next_step(check, "FAILED", "7") == NextStep("end", None, "FAILED", "FAILED")
    assert first_task(spec).task_type == "allocate"  # type: ignore[union-attr]
    assert always_run_tasks(spec, {"allocate", "check-date"}) == ["deallocate"]
    assert always_run_tasks(spec, {"deallocate"}) == []


def test_sensor_job_rules() -> None:
    spec = load_definition((EXAMPLES / "sensor-job.yaml").read_text())
    first, second, third = spec.tasks
    assert next_step(first, "FAILED", "404") == NextStep("repeat", "first", "EXECUTING")
    assert next_step(first, "COMPLETED", "200") == NextStep("task", "second", "COMPLETED")
    assert next_step(first, "FAILED", "500") == NextStep("task", "second", "FAILED")  # allow_failure
    assert next_step(second, "FAILED", "1") == NextStep("end", None, "FAILED", "FAILED")
    assert next_step(second, "FAILED", "2").kind == "restart_job"
    assert next_step(second, "FAILED", "3") == NextStep("task", "third", "COMPLETED")
    assert next_step(second, "FAILED", "4") == NextStep("end", None, "FAILED", "FAILED", "ERR_BLAH")
    assert next_step(second, "FAILED", "5") == NextStep("restart_task", "second", "FAILED")
    assert next_step(third, "COMPLETED", "0") == NextStep("end", None, "COMPLETED", "COMPLETED")
    assert targets(second) == {"FAILED", "RESTART_JOB", "COMPLETED", "ERR_BLAH", "RESTART_TASK", "third"}


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("taco-job", "allocate"),
        ("sensor-job", "first"),
        ("http-job", "get"),
        ("etl-stock-job", "extract"),
        ("parallel-video-encoding", "validate"),
        ("web-job", "process"),
        ("go-build-ci", "build"),
    ],
)
def test_first_task_of_examples(name: str, first: str) -> None:
    spec = load_definition((EXAMPLES / f"{name}.yaml").read_text())
    assert first_task(spec).task_type == first  # type: ignore[union-attr]
    assert find_cycles(spec) == []
