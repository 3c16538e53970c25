"""The reference's newer definition fields, the template precedence and the retry backoff, in
the pure core (no database)."""

from __future__ import annotations

import pytest

from jobs.definition.errors import DefinitionError
from jobs.definition.layers import TemplateData, render_job, render_task, with_job_variables
from jobs.definition.parser import load_definition, load_upload
from jobs.definition.retries import LONGEST_DELAY, retry_delay


def problems(text: str) -> str:
    with pytest.raises(DefinitionError) as err:
        load_upload(text)
    return str(err.value)


# -- task variables are template values ------------------------------------------------------

SERVICE = """\
job_type: svc-job
tasks:
- task_type: deploy
  method: SHELL
  variables:
    Service: svc
  script:
    - echo deploying {{.Service}}
"""


def test_task_variables_render_in_the_tasks_script() -> None:
    task = render_task(SERVICE, {}, "deploy")
    assert task is not None
    assert task.script == ["echo deploying svc"]
    assert task.variables == {"Service": "svc"}  # still what the executor gets


def test_without_the_task_pass_the_value_is_missing() -> None:
    # what the whole-definition render gives (and gave for dispatch before): Go's "<no value>"
    spec, _ = render_job(SERVICE, {})
    assert spec.tasks[0].script == ["echo deploying <no value>"]


def test_task_variables_belong_to_their_task_only() -> None:
    text = (
        SERVICE
        + "  on_completed: next\n- task_type: next\n  method: SHELL\n  script: ['echo {{.Service}}']\n"
    )
    task = render_task(text, {}, "next")
    assert task is not None and task.script == ["echo <no value>"]


PRECEDENCE = """\
job_type: layers
job_variables:
  A: job-variable
  B: job-variable
  C: job-variable
tasks:
- task_type: t
  method: SHELL
  variables:
    E: task-variable
    JobID: task-variable
  script:
    - "{{.A}} {{.B}} {{.C}} {{.D}} {{.E}} {{.JobID}}"
"""


def test_precedence_follows_the_reference() -> None:
    # A: an organization config only -> the job variable wins; B: a job config -> it wins over
    # the job variable (C, D: what the queen merged from params and context stays); E: the task
    # variable wins over the rest; JobID: a built-in, which a task variable does not replace
    data = TemplateData(
        {"A": "org-config", "B": "job-config", "C": "param", "D": "context", "E": "context", "JobID": 7},
        org_config_names={"A"},
        builtin_names={"JobID"},
    )
    task = render_task(PRECEDENCE, data, "t")
    assert task is not None
    assert task.script == ["job-variable job-config param context task-variable 7"]


def test_job_variables_fill_only_what_is_missing_or_an_org_config() -> None:
    data = TemplateData({"X": "org", "Y": "param"}, org_config_names={"X"})
    merged = with_job_variables(data, {"X": "jv", "Y": "jv", "Z": "jv"})
    assert (merged["X"], merged["Y"], merged["Z"]) == ("jv", "param", "jv")
    assert merged.org_config_names == frozenset()


# -- fields accepted, acted on or warned about -------------------------------------------------

FIELDS = """\
job_type: fields
methods: SHELL, DOCKER
retry: 2
retry_backoff_policy:
  min: 2s
  max: 1m
  factor: 3
  jitter: true
tasks:
- task_type: t
  method: SHELL
  cost_factor: 2.5
  artifact_key_prefix: builds/nightly
  helper_environment:
    HELPER: x
  retry_backoff_policy:
    min: 500ms
  fan_out:
    source: Items
    item_var: item
  webhook:
    url: https://example.com/hook
  debug: false
  script: [echo hi]
"""


def test_reference_fields_parse() -> None:
    spec = load_upload(FIELDS)
    task = spec.tasks[0]
    assert spec.methods == ["SHELL", "DOCKER"]
    assert spec.retry_backoff_policy == {"min": 2.0, "max": 60.0, "factor": 3.0, "jitter": 0.5}
    assert task.retry_backoff_policy == {"min": 0.5, "max": None, "factor": 2.0, "jitter": 0.0}
    assert task.cost_factor == 2.5
    assert task.artifact_key_prefix == "builds/nightly"
    assert task.helper_environment == {"HELPER": "x"}
    assert task.to_wire()["cost_factor"] == 2.5  # what the ant receives


def test_fields_not_acted_on_are_named_in_warnings() -> None:
    warned = {(w.task, w.field) for w in load_upload(FIELDS).warnings}
    assert warned == {
        (None, "methods"),
        ("t", "helper_environment"),
    }  # webhook and fan_out act now  # debug: false changes nothing, so it is not warned about
    text = str(next(w for w in load_upload(FIELDS).warnings if w.field == "helper_environment"))
    assert "task 't': field 'helper_environment': accepted but not acted on yet" in text


def test_job_level_notify_webhook_and_triggers_act_without_warnings() -> None:
    text = (
        "job_type: j\nnotify:\n  email:\n    recipients: [a@b.c]\nwebhook:\n  url: https://x\n"
        "triggers:\n- type: webhook\n  name: push\n  auth: {method: bearer_token, secret_config: Token}\ntasks:\n- task_type: t\n  method: SHELL\n  script: [true]\n"
    )
    assert {w.field for w in load_upload(text).warnings} == set()  # all three act


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("{min: 0s}", "field 'retry_backoff_policy.min': min must be a positive duration"),
        ("{factor: abc}", "field 'retry_backoff_policy.factor': factor must be a number"),
        ("{jitter: 2}", "field 'retry_backoff_policy.jitter': jitter must be true, false or a fraction"),
        ("{min: 1m, max: 1s}", "max (1s) is smaller than min (60s)"),
        ("{delay: 1s}", "field 'retry_backoff_policy.delay': unknown key 'delay'"),
        ("5s", "field 'retry_backoff_policy': expected a mapping"),
    ],
)
def test_bad_backoff_policy_is_refused_naming_the_key(policy: str, expected: str) -> None:
    text = f"job_type: j\ntasks:\n- task_type: t\n  method: SHELL\n  retry_backoff_policy: {policy}\n  script: [x]\n"
    assert expected in problems(text)


def test_bad_cost_factor_and_key_prefix_are_refused() -> None:
    base = "job_type: j\ntasks:\n- task_type: t\n  method: SHELL\n  script: [x]\n"
    assert "field 'cost_factor': expected a number" in problems(base + "  cost_factor: lots\n")
    assert "field 'cost_factor': must be a number from 0" in problems(base + "  cost_factor: -1\n")
    assert "field 'artifact_key_prefix'" in problems(base + "  artifact_key_prefix: ../other-org\n")


# -- dynamic_template_tasks --------------------------------------------------------------------

GENERATED = """\
job_type: iterate-job
{flag}tasks:
{{{{- range $val := Iterate 3 }}}}
- task_type: task-{{{{$val}}}}
  method: SHELL
  script:
    - echo {{{{$val}}}}
  {{{{ if lt $val 2 }}}}
  on_completed: task-{{{{ Add $val 1}}}}
  {{{{ end }}}}
{{{{ end }}}}
"""


def test_range_generating_tasks_needs_dynamic_template_tasks() -> None:
    message = problems(GENERATED.format(flag=""))
    assert "field 'dynamic_template_tasks'" in message
    assert "generates tasks with range" in message
    assert "(line 3)" in message


def test_range_generating_tasks_loads_with_the_flag() -> None:
    spec = load_upload(GENERATED.format(flag="dynamic_template_tasks: true\n"))
    assert spec.task_types() == ["task-0", "task-1", "task-2"]
    assert spec.dynamic_template_tasks is True


def test_range_inside_a_script_needs_no_flag() -> None:
    text = (
        "job_type: j\ntasks:\n- task_type: t\n  method: SHELL\n  script:\n"
        "  {{- range $v := Iterate 2 }}\n    - echo {{$v}}\n  {{- end }}\n"
    )
    assert load_upload(text).tasks[0].script == ["echo 0", "echo 1"]


def test_the_flag_check_is_for_uploads_only() -> None:
    # a version stored before the rule keeps running
    assert load_definition(GENERATED.format(flag="")).task_types() == ["task-0", "task-1", "task-2"]


# -- retry delays --------------------------------------------------------------------------------


def test_without_a_policy_the_delay_is_fixed() -> None:
    assert [retry_delay({}, 5.0, n) for n in range(3)] == [5.0, 5.0, 5.0]
    assert retry_delay(None, None, 4) == 0.0


def test_backoff_grows_by_factor_and_stops_at_max() -> None:
    policy = {"min": 1.0, "max": 10.0, "factor": 2.0, "jitter": 0.0}
    assert [retry_delay(policy, 99.0, n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_jitter_moves_the_delay_both_ways() -> None:
    policy = {"min": 4.0, "max": None, "factor": 2.0, "jitter": 0.5}
    assert retry_delay(policy, None, 1, rand=lambda: 0.0) == 4.0  # 8 - 50 %
    assert retry_delay(policy, None, 1, rand=lambda: 0.5) == 8.0
    assert retry_delay(policy, None, 1, rand=lambda: 1.0) == 12.0  # 8 + 50 %


def test_backoff_without_max_stays_a_usable_delay() -> None:
    assert retry_delay({"min": 1.0, "factor": 1000.0}, None, 10_000) == LONGEST_DELAY
