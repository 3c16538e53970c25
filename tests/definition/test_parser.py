"""load_definition: examples, field typing, line numbers, and hostile input."""

from __future__ import annotations

import contextlib
import json
import pathlib
import random

import pytest

from jobs.definition import DefinitionError, JobSpec, load_definition, spec_from_dict
from jobs.definition.durations import format_duration, parse_duration
from jobs.definition.errors import Problem
from tests.conftest import example_paths, example_text

EXAMPLES = example_paths()


def load(text: str, **kw: object) -> JobSpec:
    return load_definition(text, **kw)  # type: ignore[arg-type]


def problems(text: str, **kw: object) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        load_definition(text, **kw)  # type: ignore[arg-type]
    assert info.value.problems
    return info.value.problems


def messages(text: str, **kw: object) -> str:
    return "\n".join(str(p) for p in problems(text, **kw))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_serialises(path: pathlib.Path) -> None:
    spec = load_definition(path.read_text())
    assert spec.job_type == path.stem or spec.job_type.endswith(path.stem)
    assert spec.tasks and not spec.warnings
    json.dumps(spec.to_dict())
    json.dumps(spec.raw)


def test_the_examples_cover_what_the_readme_promises() -> None:
    specs = [load_definition(p.read_text()) for p in EXAMPLES]
    tasks = [t for s in specs for t in s.tasks]
    methods = {t.method for t in tasks}
    assert {"SHELL", "DOCKER", "HTTP_GET", "FORK_JOB", "AWAIT_FORKED_JOB"} <= methods
    assert any(s.cron_trigger for s in specs)
    assert any(t.dependencies and t.artifacts for t in tasks)  # artifacts handed between tasks
    assert any("EXECUTING" in t.on_exit_code.values() for t in tasks)  # a sensor
    names = {t.task_type for t in tasks}
    assert any(set(t.on_exit_code.values()) & names for t in tasks)  # exit codes routed to tasks


SCALARS = """\
job_type: io.formicary.scalars
tasks:
- task_type: build
  method: SHELL
  environment:
    GO111MODULE: on
    CGO_ENABLED: 0
  variables:
    TLS_VERIFY: 1
    CERT_DIR: "/certs"
public_plugin: true
sem_version: 1.0-dev
"""


def test_scalars_keep_their_written_text() -> None:
    spec = load_definition(SCALARS)
    assert spec.tasks[0].environment == {"GO111MODULE": "on", "CGO_ENABLED": "0"}
    assert spec.tasks[0].variables == {"TLS_VERIFY": "1", "CERT_DIR": "/certs"}
    assert spec.sem_version == "1.0-dev" and spec.public_plugin is True


def test_skip_if_renders_with_missing_params() -> None:
    text = example_text("ci-pipeline")
    assert not load_definition(text).is_skipped()  # GitBranch defaults to main
    assert load_definition(text, {"GitBranch": "wip/try"}).is_skipped()
    assert not load_definition(text, {"GitBranch": "dev"}).is_skipped()


def test_except_renders_per_request() -> None:
    text = example_text("ci-pipeline")
    assert load_definition(text, {"GitBranch": "dev"}).task("publish").except_ == "true"  # type: ignore[union-attr]
    assert load_definition(text, {"GitBranch": "main"}).task("publish").except_ is None  # type: ignore[union-attr]


def test_sensor_template_chooses_script() -> None:
    text = example_text("file-sensor")
    early = load_definition(text, {"JobElapsedSecs": 0, "ReadyFile": "/in/ready"})
    late = load_definition(text, {"JobElapsedSecs": "10", "ReadyFile": "/in/ready", "MaxWaitSecs": 5})
    assert early.tasks[0].script == ['test -f "/in/ready" || { echo "/in/ready not there yet"; exit 100; }']
    assert late.tasks[0].script == ['echo "gave up waiting for /in/ready after 10s" && exit 1']
    assert early.tasks[0].timeout == 30 and early.tasks[0].delay_between_retries == 1
    assert early.tasks[0].on_exit_code == {"100": "EXECUTING"}


def test_method_default_is_visible() -> None:
    spec = load(
        "job_type: j\ntasks:\n- task_type: a\n- task_type: b\n  method: SHELL\n".replace(
            "- task_type: a\n", "- task_type: a\n  on_completed: b\n"
        )
    )
    a, b = spec.tasks
    assert (a.method, a.method_given) == ("KUBERNETES", False)
    assert (b.method, b.method_given) == ("SHELL", True)


def test_json_text_and_dict_are_accepted() -> None:
    doc = {
        "job_type": "j",
        "tasks": [{"task_type": "a", "method": "SHELL", "script": ["echo"], "except": "{{false}}"}],
    }
    assert load(json.dumps(doc)).tasks[0].script == ["echo"]
    spec = spec_from_dict(doc)
    assert spec.tasks[0].except_ == "{{false}}"
    assert spec.to_dict()["tasks"][0]["except"] == "{{false}}"


def test_bytes_input() -> None:
    assert load_definition(b"job_type: j\ntasks:\n- task_type: a\n").job_type == "j"
    assert "UTF-8" in str(problems(b"\xff\xfe"))  # type: ignore[arg-type]


def test_exit_code_keys_are_upper_cased_strings() -> None:
    spec = load(
        "job_type: j\ntasks:\n- task_type: a\n  on_exit_code:\n    404: b\n    failed: b\n- task_type: b\n"
    )
    assert spec.tasks[0].on_exit_code == {"404": "b", "FAILED": "b"}


def test_durations_in_fields() -> None:
    spec = load(
        "job_type: j\ntimeout: 1h\ndelay_between_retries: 90\ntasks:\n- task_type: a\n  timeout: 1m30s\n  pause_time: 500ms\n"
    )
    assert (spec.timeout, spec.delay_between_retries) == (3600, 90)
    assert (spec.tasks[0].timeout, spec.tasks[0].pause_time) == (90, 0.5)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15),
        ("1m30s", 90),
        ("2h", 7200),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("0", 0),
        (30, 30),
        ("10", 10),
        ("-1s", -1),
        ("1h2m3s4ms", 3723.004),
        ("250us", 0.00025),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "s", "1.2.3s", True, None, [1], "1e400"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (90, 3600, 0.5, 7261)] == ["1m30s", "1h", "0.5s", "2h1m1s"]


WRONG_TYPES = [
    ("retry: abc", "field 'retry'", "whole number"),
    ("tasks: 5", "field 'tasks'", "list of tasks"),
    ("max_concurrency: [1]", "field 'max_concurrency'", "whole number"),
    ("public_plugin: maybe", "field 'public_plugin'", "true or false"),
    ("timeout: forever", "field 'timeout'", "invalid duration"),
    ("job_variables: [a]", "field 'job_variables'", "mapping"),
    ("description: {a: 1}", "field 'description'", "expected text"),
]


@pytest.mark.parametrize(("line", "field", "fragment"), WRONG_TYPES)
def test_wrong_job_field_types(line: str, field: str, fragment: str) -> None:
    text = f"job_type: j\n{line}\n" + ("" if line.startswith("tasks") else "tasks:\n- task_type: a\n")
    msg = messages(text)
    assert field in msg and fragment in msg and "(line 2)" in msg


TASK_WRONG_TYPES = [
    ("script: 3", "script", "list of text"),
    ("script:\n  - echo a: b", "script", "item 1 must be text"),
    ("retry: x", "retry", "whole number"),
    ("allow_failure: 2", "allow_failure", "true or false"),
    ("environment: [a]", "environment", "mapping"),
    ("environment:\n    A: [1]", "environment", "value of 'A' must be text"),
    ("on_exit_code: 3", "on_exit_code", "mapping"),
    ("on_exit_code:\n    1:", "on_exit_code", "needs a target"),
    ("timeout: 5 minutes", "timeout", "invalid duration"),
    ("services: abc", "services", "list of mappings"),
    ("container: abc", "container", "mapping"),
    ("artifacts:\n    paths: x", "artifacts", "list of text"),
    ("cache:\n    expires_after: soon", "cache", "invalid duration"),
]


@pytest.mark.parametrize(("line", "field", "fragment"), TASK_WRONG_TYPES)
def test_wrong_task_field_types(line: str, field: str, fragment: str) -> None:
    text = f"job_type: j\ntasks:\n- task_type: t1\n  {line}\n"
    found = problems(text)
    match = [p for p in found if fragment in p.message]
    assert match, found
    assert match[0].task == "t1" and match[0].field in (field, "paths", "expires_after")
    assert match[0].line is not None and match[0].line >= 4


def test_problem_text_names_task_field_and_line() -> None:
    text = "job_type: j\ntasks:\n- task_type: check-date\n  on_exit_code:\n    1: mondy\n"
    found = [p for p in problems(text) if "mondy" in p.message]
    assert (
        str(found[0])
        == "task 'check-date': field 'on_exit_code': unknown target 'mondy' for exit code 1 (line 4)"
    )


def test_unknown_keys_strict_and_lenient() -> None:
    text = "job_type: j\nfoo: 1\ntasks:\n- task_type: x\n  bar: 2\n"
    msg = messages(text)
    assert "unknown key 'foo' (line 2)" in msg
    assert "task 'x': unknown key 'bar' (line 5)" in msg
    spec = load_definition(text, strict=False)
    assert [w.message for w in spec.warnings] == ["unknown key 'foo'", "unknown key 'bar'"]


def test_line_numbers_survive_template_blocks() -> None:
    text = "job_type: j\n{{if .X}}\ndescription: a\n{{else}}\ndescription: b\n{{end}}\ntasks:\n- task_type: a\n  retry: bad\n"
    found = [p for p in problems(text) if p.field == "retry"]
    assert found[0].line == 9


def test_template_error_is_definition_error_with_line() -> None:
    found = problems("job_type: j\ntasks:\n- task_type: a\n  script:\n    - {{ .X | nosuch }}\n")
    assert found[0].line == 5 and "nosuch" in found[0].message


def test_duplicate_keys_reported() -> None:
    assert "duplicate key 'job_type'" in messages("job_type: j\njob_type: k\ntasks:\n- task_type: a\n")


def test_anchors_and_merge_keys_work() -> None:
    text = "x-defaults: &d\n  retry: 2\njob_type: j\ntasks:\n- <<: *d\n  task_type: a\n"
    spec = load_definition(text, strict=False)
    assert spec.tasks[0].retry == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "- a\n- b\n",
        "just a string",
        "123",
        "job_type: [\n",
        "job_type: j\n\ttasks: []\n",
        "? [a, b]\n: c\n",
        "a: !!python/object:os.system x\n",
        "a: !custom x\n",
        "---\na: 1\n---\nb: 2\n",
        "job_type: j\ntasks:\n- 5\n- [a]\n",
        "job_type: j\ntasks:\n",
        "job_type:\ntasks:\n- task_type:\n",
        "{{",
        "job_type: j\nbad: {{ if }}\n",
        "\x00",
    ],
)
def test_malformed_documents(text: str) -> None:
    problems(text)


def test_billion_laughs_refused() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("job_type: j\ntasks:\n- task_type: x")
    found = problems("\n".join(lines))
    assert any("more than" in p.message for p in found)


def test_deep_nesting_refused() -> None:
    assert problems("a: " + "[" * 10_000 + "]" * 10_000)
    assert problems("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)))


def test_huge_document_refused() -> None:
    found = problems("job_type: j\n" + "#" * (1024 * 1024 + 10))
    assert "larger than" in found[0].message


def test_template_output_bomb_refused() -> None:
    assert problems("job_type: j\n{{range Iterate 100000}}{{range Iterate 100000}}x{{end}}{{end}}\n")


def test_random_bytes_only_definition_errors() -> None:
    rng = random.Random(20240501)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
        with contextlib.suppress(DefinitionError):
            load_definition(blob.decode("latin-1"))


def test_random_yaml_shaped_input_only_definition_errors() -> None:
    rng = random.Random(7)
    pieces = [
        "job_type: j\n",
        "tasks:\n",
        "- task_type: a\n",
        "  on_completed: b\n",
        "  script: [x]\n",
        "  retry: -1\n",
        "- task_type: b\n",
        "  method: FORK_JOB\n",
        "  : \n",
        "&a ",
        "*a ",
        "{{.X}}",
        "[",
        "]",
        "{",
        "}",
        "- ",
        "  ",
        "on_exit_code: {1: a}\n",
        "'",
        '"',
        "\t",
        "---\n",
        "!!str ",
        "<<: *a\n",
    ]
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        with contextlib.suppress(DefinitionError):
            load_definition(text)


def test_spec_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(DefinitionError):
        spec_from_dict([1, 2])  # type: ignore[arg-type]


def test_definition_error_to_dict() -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition("job_type: j\nretry: x\ntasks:\n- task_type: a\n")
    data = info.value.to_dict()
    assert data["problems"][0] == {
        "message": "expected a whole number, got 'x'",
        "task": None,
        "field": "retry",
        "line": 2,
    }


def test_a_rendered_text_is_parsed_once() -> None:
    # a job's start and its tasks' dispatches render the same text: one parse serves them all
    text = 'job_type: once\ntasks:\n- task_type: t\n  script: ["echo {{.Out}}"]\n'
    first = load_definition(text, {"Out": "a"})
    assert load_definition(text, {"Out": "a", "Unused": "b"}) is first
    other = load_definition(text, {"Out": "c"})
    assert other is not first and other.tasks[0].script == ["echo c"]
    assert load_definition(text, {"Out": "a"}, strict=False) is not first  # its warnings differ


def test_a_text_that_fails_is_never_kept() -> None:
    text = "job_type: broken\ntasks:\n- task_type: t\n  method: {{.Method}}\n"
    for _ in range(2):
        with pytest.raises(DefinitionError):
            load_definition(text, {"Method": "NOPE"})
