"""``sub_workflow`` on FORK_JOB (jobs/definition/sub_workflow.py): parsing, the problems an
upload names, the child's params and what is promoted back. Pure, no database."""

from __future__ import annotations

import pytest

from jobs.definition import DefinitionError, load_definition
from jobs.definition.ignored_fields import ignored_field_warnings
from jobs.definition.sub_workflow import SubWorkflow, SubWorkflowError, child_params, promoted

FORK = """\
job_type: parent
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: child
  sub_workflow:
{body}"""


def problems(body: str) -> str:
    with pytest.raises(DefinitionError) as info:
        load_definition(FORK.format(body=body))
    return "\n".join(str(p) for p in info.value.problems)


def test_the_reference_example_parses() -> None:
    spec = load_definition(FORK.format(body="""\
    input_params:
      - {name: source_table, value: "{{ .parent_table }}"}
      - {name: batch_size, value: 100}
    output_variables:
      - {name: row_count, value: etl_row_count}
    wait_for_completion: true
"""), {"parent_table": "orders"})  # fmt: skip
    sub = SubWorkflow.parse(spec.tasks[0].sub_workflow)
    assert sub == SubWorkflow((("source_table", "orders"), ("batch_size", "100")),
                              (("row_count", "etl_row_count"),), True)  # fmt: skip
    assert not ignored_field_warnings(spec)  # acted on: no "not acted on" warning


def test_output_variables_may_be_a_mapping() -> None:
    sub = SubWorkflow.parse({"output_variables": {"row_count": "etl_row_count", "status": "child_status"}})
    assert sub.output_variables == (("row_count", "etl_row_count"), ("status", "child_status"))
    assert sub.input_params == () and not sub.wait_for_completion


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    wait_for_completion: maybe\n", "'sub_workflow.wait_for_completion': expected true or false"),
        ("    inputs: []\n", "'sub_workflow.inputs': unknown field"),
        ("    input_params: {a: b}\n", "'sub_workflow.input_params': expected a list of {name, value}"),
        ("    input_params: [{value: x}]\n", "'sub_workflow.input_params[0]': name: required"),
        ("    input_params: [{name: a, value: x}, {name: a, value: y}]\n",
         "'sub_workflow.input_params[1]': duplicate name 'a'"),
        ("    input_params: [{name: a, value: [1]}]\n", "'sub_workflow.input_params[0]': value: expected text"),
        ("    output_variables: [{name: a, value: 'not a key'}]\n",
         "'sub_workflow.output_variables[0]': value: the parent context key"),
        ("    output_variables: [{name: a, value: b, other: c}]\n",
         "'sub_workflow.output_variables[0]': expected {name, value}"),
    ],
)  # fmt: skip
def test_problems_name_the_task_and_field(body: str, expected: str) -> None:
    found = problems(body)
    assert "task 'fork'" in found and expected in found, found


def test_only_fork_job_tasks_take_a_sub_workflow() -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition("job_type: j\ntasks:\n- task_type: t\n  method: SHELL\n  script: [true]\n"
                        "  sub_workflow: {wait_for_completion: true}\n")  # fmt: skip
    assert "sub_workflow applies to FORK_JOB tasks, not SHELL" in str(info.value.problems[0])


def test_child_params_are_the_input_params_only() -> None:
    assert child_params(SubWorkflow()) == {}
    assert child_params(SubWorkflow((("a", "1"), ("b", "")))) == {"a": "1", "b": ""}


def test_promoted() -> None:
    child = {"row_count": 7, "status": "ok", "other": "x"}
    assert promoted(SubWorkflow(), child) == child  # none named: all of it
    named = SubWorkflow(output_variables=(("row_count", "etl_row_count"), ("missing", "m")))
    assert promoted(named, child) == {"etl_row_count": 7}


def test_error_carries_its_field() -> None:
    with pytest.raises(SubWorkflowError) as info:
        SubWorkflow.parse([1])
    assert info.value.field == "sub_workflow"
