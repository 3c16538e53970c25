"""validate(): one case per rule, each asserting the problem names what is wrong."""

from __future__ import annotations

import pytest

from jobs.definition import DefinitionError, load_definition
from jobs.definition.validate import cron_problem, sem_version_problem


def errors(text: str) -> str:
    with pytest.raises(DefinitionError) as info:
        load_definition(text)
    return "\n".join(str(p) for p in info.value.problems)


def job(tasks: str, head: str = "job_type: j\n") -> str:
    return head + "tasks:\n" + tasks


CASES = [
    ("missing job_type", "tasks:\n- task_type: a\n", "job_type is required"),
    ("bad job_type", job("- task_type: a\n", "job_type: 'bad name!'\n"), "invalid job_type"),
    ("no tasks", "job_type: j\n", "at least one task"),
    ("empty tasks", "job_type: j\ntasks: []\n", "at least one task"),
    (
        "too many tasks",
        job(
            "".join(f"- task_type: t{i}\n  on_completed: t{i + 1}\n" for i in range(100))
            + "- task_type: t100\n"
        ),
        "at most 100 tasks",
    ),
    (
        "duplicate",
        job("- task_type: a\n  on_completed: a2\n- task_type: a2\n- task_type: a2\n"),
        "duplicate task_type 'a2'",
    ),
    (
        "missing task_type",
        job("- task_type: a\n- method: SHELL\n"),
        "task '#2': field 'task_type': task_type is required",
    ),
    ("bad task_type", job("- task_type: 'a b'\n"), "invalid task_type"),
    ("reserved task_type", job("- task_type: COMPLETED\n"), "reserved"),
    (
        "unknown target",
        job("- task_type: a\n  on_completed: nope\n"),
        "task 'a': field 'on_completed': unknown target 'nope' (line 4)",
    ),
    (
        "unknown on_failed",
        job("- task_type: a\n  on_failed: nope\n"),
        "field 'on_failed': unknown target 'nope'",
    ),
    (
        "unknown exit target",
        job("- task_type: a\n  on_exit_code:\n    2: mondy\n"),
        "unknown target 'mondy' for exit code 2",
    ),
    (
        "unreachable",
        job("- task_type: a\n  on_completed: b\n- task_type: b\n- task_type: c\n"),
        "task c is not reachable",
    ),
    (
        "unreachable island",
        job("- task_type: a\n- task_type: b\n  on_completed: c\n- task_type: c\n  on_completed: b\n"),
        "cycle: b -> c -> b",
    ),
    (
        "cycle",
        job(
            "- task_type: a\n  on_completed: b\n- task_type: b\n  on_completed: c\n- task_type: c\n  on_failed: b\n"
        ),
        "cycle: b -> c -> b",
    ),
    (
        "self cycle",
        job("- task_type: a\n  on_completed: b\n- task_type: b\n  on_failed: b\n"),
        "cycle: b -> b",
    ),
    ("unknown method", job("- task_type: a\n  method: TELEPORT\n"), "unknown method 'TELEPORT'"),
    ("lowercase method", job("- task_type: a\n  method: shell\n"), "unknown method 'shell'"),
    ("fork without type", job("- task_type: a\n  method: FORK_JOB\n"), "FORK_JOB needs fork_job_type"),
    ("await nothing", job("- task_type: a\n  method: AWAIT_FORKED_JOB\n"), "needs await_forked_tasks"),
    (
        "await non-fork",
        job(
            "- task_type: a\n  on_completed: b\n- task_type: b\n  method: AWAIT_FORKED_JOB\n  await_forked_tasks: [a]\n"
        ),
        "'a', which is not a FORK_JOB task",
    ),
    (
        "await unknown",
        job("- task_type: b\n  method: AWAIT_FORKED_JOB\n  await_forked_tasks: [zz]\n"),
        "awaits unknown task 'zz'",
    ),
    (
        "messaging",
        job("- task_type: a\n  method: MESSAGING\n  messaging_request_queue: q\n"),
        "MESSAGING needs",
    ),
    ("http no url", job("- task_type: a\n  method: HTTP_POST_JSON\n"), "HTTP_POST_JSON needs a url"),
    ("bad cron", job("- task_type: a\n", "job_type: j\ncron_trigger: '* *'\n"), "5, 6 or 7 fields"),
    (
        "bad cron chars",
        job("- task_type: a\n", "job_type: j\ncron_trigger: '* * * * $'\n"),
        "invalid cron field",
    ),
    (
        "plugin no version",
        job("- task_type: a\n", "job_type: io.x.y\npublic_plugin: true\n"),
        "needs a sem_version",
    ),
    (
        "plugin short name",
        job("- task_type: a\n", "job_type: plug\npublic_plugin: true\nsem_version: '1.0'\n"),
        "bundle id",
    ),
    ("bad sem_version", job("- task_type: a\n", "job_type: j\nsem_version: abc\n"), "sem_version 'abc'"),
    (
        "negative retry",
        job("- task_type: a\n", "job_type: j\nretry: -1\n"),
        "field 'retry': must not be negative",
    ),
    (
        "negative concurrency",
        job("- task_type: a\n", "job_type: j\nmax_concurrency: -2\n"),
        "field 'max_concurrency'",
    ),
    (
        "negative task retry",
        job("- task_type: a\n  retry: -3\n"),
        "task 'a': field 'retry': must not be negative",
    ),
    ("negative timeout", job("- task_type: a\n  timeout: -5s\n"), "field 'timeout': must not be negative"),
    ("unknown dependency", job("- task_type: a\n  dependencies: [zz]\n"), "depends on unknown task 'zz'"),
    ("self dependency", job("- task_type: a\n  dependencies: [a]\n"), "cannot depend on itself"),
    (
        "absolute artifact",
        job("- task_type: a\n  artifacts:\n    paths: [/etc/passwd]\n"),
        "path '/etc/passwd' must be relative",
    ),
    ("dotdot artifact", job("- task_type: a\n  artifacts:\n    paths: [a/../../x]\n"), "must be relative"),
    ("dotdot cache", job("- task_type: a\n  cache:\n    paths: [..]\n"), "field 'cache'"),
]


@pytest.mark.parametrize(("name", "text", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_rule(name: str, text: str, fragment: str) -> None:
    assert fragment in errors(text)


VALID = [
    job("- task_type: a\n"),
    job("- task_type: a\n  method: HTTP_GET\n  script: [https://x.io]\n"),
    job(
        "- task_type: a\n  on_exit_code:\n    404: EXECUTING\n    500: FATAL\n    3: ERR_X\n    4: RESTART_JOB\n    5: PAUSE_JOB\n"
    ),
    job("- task_type: a\n  on_completed: b\n  on_failed: c\n- task_type: b\n- task_type: c\n"),
    job("- task_type: a\n", "job_type: j\ncron_trigger: '0 0 * * * * *'\n"),
    job("- task_type: a\n", "job_type: j\ncron_trigger: '@hourly'\n"),
    job("- task_type: a\n  method: MESSAGING\n  messaging_request_queue: q1\n  messaging_reply_queue: q2\n"),
    job("- task_type: a\n  artifacts:\n    paths: [out/x.txt, ./y, .cache/]\n"),
]


@pytest.mark.parametrize("text", VALID)
def test_valid(text: str) -> None:
    assert load_definition(text).tasks


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("* * * * *", True),
        ("0 */5 * * * *", True),
        ("0 0 12 * * ? 2025", True),
        ("@daily", True),
        ("@every 1h", True),
        ("@never", False),
        ("", False),
        ("* * * *", False),
        ("a;b * * * *", False),
    ],
)
def test_cron(expr: str, ok: bool) -> None:
    assert (cron_problem(expr) is None) is ok


@pytest.mark.parametrize(
    ("v", "ok"),
    [
        ("1.0", True),
        ("1.0.1", True),
        ("1.0-dev", True),
        ("2.1.rc1", True),
        ("1", False),
        ("a.1", False),
        ("1.x", False),
    ],
)
def test_sem_version(v: str, ok: bool) -> None:
    assert (sem_version_problem(v) is None) is ok
