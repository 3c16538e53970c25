"""Hypothesis over the definition loader: any text, any YAML structure shaped like a definition,
any template, with or without params, ends in a spec or the core's own ``DefinitionError`` (a
list of problems), never another exception (issue 14, "Fuzzing in CI"). Pure: no database."""

import contextlib
import string

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.definition.errors import DefinitionError
from jobs.definition.parser import load_definition, spec_from_dict

pytestmark = pytest.mark.fuzz

JOB_KEYS = ["job_type", "description", "max_concurrency", "required_params", "cron_trigger", "skip_if", "retry",
            "delay_between_retries", "hard_reset_after_retries", "timeout", "public_plugin", "sem_version",
            "job_variables", "tags", "resources", "notify", "triggers", "tasks"]  # fmt: skip
TASK_KEYS = ["task_type", "method", "description", "on_completed", "on_failed", "on_exit_code", "environment",
             "variables", "script", "timeout", "retry", "delay_between_retries", "cache", "artifacts", "url",
             "headers", "dependencies", "except", "allow_failure", "always_run", "tags", "webhook", "fork_job_type",
             "await_forked_tasks", "container", "resources", "pause_time", "fan_out", "sub_workflow",
             "approval_policy", "retry_backoff_policy"]  # fmt: skip
WORDS = ["t1", "t2", "SHELL", "HTTP_GET", "DOCKER", "FORK_JOB", "MANUAL", "COMPLETED", "FAILED", "EXECUTING",
         "RESTART_JOB", "ERR_X", "1s", "5m", "-3", "1e400", "0 * * * * * *", "{{.X}}", "true", "\ud800", "\x00"]  # fmt: skip

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(WORDS) | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(TASK_KEYS + WORDS), inner, max_size=4),
    max_leaves=20,
)
tasks = st.lists(
    st.dictionaries(st.sampled_from(TASK_KEYS), values, max_size=8).map(lambda t: {"task_type": "t1", **t}),
    min_size=1, max_size=4,
)  # fmt: skip
definitions = st.dictionaries(st.sampled_from(JOB_KEYS), values, max_size=8).flatmap(
    lambda job: tasks.map(lambda ts: {"job_type": "fuzz", **job, "tasks": ts})
)
template_bits = st.sampled_from(
    ["{{", "}}", "{{.X}}", "{{ if .X }}", "{{ else }}", "{{ end }}", "{{range $i := Iterate 3}}", "{{- ", " -}}",
     "{{ .X | default \"d\" }}", "{{ Add 1 2 }}", "{{ index .Y 0 }}", "{{ printf \"%q\" .X }}", "{{ $v := 1 }}",
     "{{ len .X }}", "{{ .X.Y.Z }}", "{{ Random 0 0 }}", "{{ slice .X 1 0 }}", "{{ eq 1 }}", "{{/* c */}}"]
)  # fmt: skip
params = st.dictionaries(st.sampled_from(["X", "Y", "Word"]), values, max_size=3)


def loads_or_refuses(text: str | bytes, data: dict | None = None) -> None:
    try:
        load_definition(text, data)
    except DefinitionError as exc:
        assert exc.problems, "a DefinitionError names its problems"


@given(text=st.text(max_size=400) | st.binary(max_size=200))
@settings(settings.get_profile("formicary-fuzz"))
def test_any_text(text):  # type: ignore[no-untyped-def]
    loads_or_refuses(text)


@given(definition=definitions, data=st.none() | params)
@settings(settings.get_profile("formicary-fuzz"))
def test_any_definition_shaped_yaml(definition, data):  # type: ignore[no-untyped-def]
    try:
        text = yaml.safe_dump(definition, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return  # PyYAML cannot write it: nothing to load
    loads_or_refuses(text, data)
    with contextlib.suppress(DefinitionError):
        spec_from_dict(definition)


@given(bits=st.lists(template_bits | st.text(string.ascii_letters + " :-\n", max_size=10), max_size=12),
       data=st.none() | params)  # fmt: skip
@settings(settings.get_profile("formicary-fuzz"))
def test_any_template(bits, data):  # type: ignore[no-untyped-def]
    body = "".join(bits)
    text = f'job_type: fuzz\ndescription: "{body}"\ntasks:\n- task_type: t1\n  method: SHELL\n  script:\n  - {body}\n'
    loads_or_refuses(text, data)
