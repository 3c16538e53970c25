"""SHELL executor: exit codes, after_script, environment, secrets, timeouts and cancel."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ants.executors.base import ExecutionContext, executor_for
from ants.executors.shell import ShellExecutor, parse_dotenv
from ants.protocol import TaskRequest


def make_req(spec: dict, **kw) -> TaskRequest:
    return TaskRequest(task_execution_id=1, job_request_id=2, task_type="t", spec=spec, **kw)


class Ctx:
    def __init__(self, tmp_path: Path, timeout: float | None = None) -> None:
        self.lines: list[tuple[str, str, float]] = []
        self.cancel = threading.Event()
        self.ctx = ExecutionContext(
            workdir=tmp_path / "work",
            log=lambda s, line: self.lines.append((s, line, time.monotonic())),
            cancel_event=self.cancel,
            deadline=None if timeout is None else time.monotonic() + timeout,
        )

    def out(self) -> list[str]:
        return [line for s, line, _ in self.lines if s == "stdout"]

    def all_text(self) -> str:
        return "\n".join(line for _, line, _ in self.lines)


def run(tmp_path: Path, spec: dict, timeout: float | None = None, executor=None, **kw):
    c = Ctx(tmp_path, timeout)
    result = (executor or ShellExecutor()).execute(make_req(spec, **kw), c.ctx)
    return result, c


def run_bounded(tmp_path: Path, spec: dict, **kw):
    """``run`` in a thread, given 60 s only against hanging: the scripts that use it hold their
    output open or ignore SIGTERM for 600 s, so a broken kill or orphan rule fails, not slows."""
    done: list = []
    thread = threading.Thread(target=lambda: done.append(run(tmp_path, spec, **kw)), daemon=True)
    thread.start()
    thread.join(60)
    assert done, "the task did not end while a process of its group lived on"
    return done[0]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")  # a zombie is dead, just not reaped (no init in containers)
    except FileNotFoundError:
        return False


def wait_gone(pid: int, secs: float = 3.0) -> bool:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_registry_returns_shell_executor() -> None:
    assert isinstance(executor_for("shell"), ShellExecutor)


def test_success_runs_before_script_script_after_script_in_order(tmp_path) -> None:
    result, c = run(
        tmp_path, {"before_script": ["echo b"], "script": ["echo s1", "echo s2"], "after_script": "echo a"}
    )
    assert result.status == "COMPLETED" and result.exit_code == "0"
    assert c.out() == ["b", "s1", "s2", "a"]
    assert result.stdout == ["b", "s1", "s2", "a"]
    assert ("system", "$ echo s1") in [(s, line) for s, line, _ in c.lines]


def test_first_failing_command_sets_exit_code_and_failed_command(tmp_path) -> None:
    result, c = run(tmp_path, {"script": ["echo one", "echo oops >&2; exit 7", "echo never"]})
    assert result.status == "FAILED"
    assert result.exit_code == "7"
    assert result.failed_command == "echo oops >&2; exit 7"
    assert c.out() == ["one"]  # later commands skipped
    # stderr is its own stream (the UI styles it), in the order printed
    assert [(st, line) for st, line, _ in c.lines if st != "system"] == [
        ("stdout", "one"),
        ("stderr", "oops"),
    ]


def test_failing_before_script_skips_script(tmp_path) -> None:
    result, c = run(tmp_path, {"before_script": ["false"], "script": ["echo no"]})
    assert result.status == "FAILED" and result.exit_code == "1" and result.failed_command == "false"
    assert c.out() == []


def test_after_script_always_runs_and_its_failure_is_ignored(tmp_path) -> None:
    result, c = run(tmp_path, {"script": ["exit 4"], "after_script": ["echo cleanup"]})
    assert result.status == "FAILED" and result.exit_code == "4" and c.out() == ["cleanup"]
    result, c = run(tmp_path, {"script": ["echo ok"], "after_script": ["exit 9", "echo not-reached"]})
    assert result.status == "COMPLETED" and result.exit_code == "0"
    assert result.warnings and "after_script failed" in result.warnings[0]
    assert c.out() == ["ok"]


def test_environment_and_variables(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LEAKY_HOST_VAR", "host")
    result, c = run(
        tmp_path,
        {
            "script": [
                'echo "$FROM_REQ $FROM_SPEC $FROM_ENV $NUM $FLAG ${LEAKY_HOST_VAR:-none}"',
                'echo "$FORMICARY_TASK_TYPE $FORMICARY_TASK_EXECUTION_ID $FORMICARY_JOB_REQUEST_ID"',
                "pwd",
            ],
            "variables": {"FROM_SPEC": "spec", "NUM": 3, "FLAG": True, "bad.name": "x"},
            "environment": {"FROM_ENV": "env", "FROM_SPEC": "env-wins"},
        },
        variables={"FROM_REQ": "req", "with space": "skipped"},
    )
    assert result.status == "COMPLETED", c.all_text()
    assert c.out()[0] == "req env-wins env 3 true none"
    assert c.out()[1] == "t 1 2"
    assert c.out()[2] == str((tmp_path / "work").resolve())


def test_working_dir_is_relative_and_cannot_escape(tmp_path) -> None:
    result, c = run(tmp_path, {"script": ["pwd"], "working_dir": "sub/dir"})
    assert result.status == "COMPLETED"
    assert c.out() == [str((tmp_path / "work" / "sub" / "dir").resolve())]
    result, c = run(tmp_path, {"script": ["pwd"], "working_dir": "/abs"})
    assert c.out() == [str((tmp_path / "work" / "abs").resolve())]
    result, c = run(tmp_path, {"script": ["touch escaped"], "working_dir": "../.."})
    assert result.status == "FAILED" and result.error_code == "ERR_VALIDATION"
    assert "escapes" in result.error_message
    assert not (tmp_path.parent / "escaped").exists()


def test_secrets_are_redacted(tmp_path) -> None:
    result, c = run(
        tmp_path,
        {
            "script": ['echo "user=$USER_NAME pass=$DB_PASS tok=$API_TOKEN"', "echo s3cr3t-value; exit 3"],
            "environment": {"API_TOKEN": "tok-123456"},
        },
        variables={"DB_PASS": "s3cr3t-value", "USER_NAME": "bob"},
        secret_names=["DB_PASS"],
    )
    text = c.all_text()
    assert "s3cr3t-value" not in text and "tok-123456" not in text
    assert "user=bob pass=**** tok=****" in c.out()
    assert all("s3cr3t" not in line for line in result.stdout)
    assert result.failed_command == "echo ****; exit 3"


def test_output_is_streamed_while_the_command_runs(tmp_path) -> None:
    gate = tmp_path / "gate"
    out: list[str] = []

    def log(stream: str, line: str) -> None:
        if stream == "stdout":
            out.append(line)
        if line == "first":
            gate.touch()  # the command goes on only once its first line was seen

    ctx = ExecutionContext(workdir=tmp_path / "work", log=log, cancel_event=threading.Event(),
                           deadline=time.monotonic() + 60)  # fmt: skip  # only against hanging
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second"
    result = ShellExecutor().execute(make_req({"script": [script]}), ctx)
    assert result.status == "COMPLETED", result.error_code  # a buffered "first" would end in the timeout
    assert out == ["first", "second"]


def test_partial_last_line_and_long_output(tmp_path) -> None:
    result, c = run(tmp_path, {"script": ["seq 1 5000", "printf 'no newline'"]})
    out = c.out()
    assert out[0] == "1" and out[4999] == "5000" and out[-1] == "no newline"
    assert len(result.stdout) == 100 and result.stdout[-1] == "no newline"


def test_timeout_kills_the_whole_process_group(tmp_path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    result, c = run(
        tmp_path,
        {"script": [f"sh -c 'sleep 60 & echo $! > {pidfile}; wait'"], "after_script": ["echo after"]},
        timeout_secs=0.5,
    )
    assert result.status == "FAILED" and result.error_code == "ERR_TASK_TIMEOUT"
    assert result.exit_code == "143"  # killed by SIGTERM
    assert "sleep 60" in result.failed_command
    assert c.out() == ["after"]  # after_script runs after a timeout
    assert wait_gone(int(pidfile.read_text()))


def test_context_deadline_is_honoured(tmp_path) -> None:
    result, _ = run(tmp_path, {"script": ["sleep 30"]}, timeout=0.3)
    assert result.error_code == "ERR_TASK_TIMEOUT"


def test_sigterm_ignoring_process_is_killed_after_grace(tmp_path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    start = time.monotonic()
    result, _ = run_bounded(
        tmp_path,
        {"script": [f"trap '' TERM; sleep 600 & echo $! > {pidfile}; wait"]},
        timeout_secs=0.3,
        executor=ShellExecutor(kill_grace_secs=0.5),
    )
    assert result.error_code == "ERR_TASK_TIMEOUT"
    assert time.monotonic() - start > 0.7  # timing-ok: a lower bound (the grace was given) never flakes
    assert wait_gone(int(pidfile.read_text()))


def test_cancel_kills_and_skips_after_script(tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    c = Ctx(tmp_path)
    threading.Timer(0.3, c.cancel.set).start()
    result = ShellExecutor().execute(
        make_req(
            {"script": [f"sleep 60 & echo $! > {pidfile}; wait", "echo next"], "after_script": ["echo after"]}
        ),
        c.ctx,
    )
    assert result.status == "CANCELLED"
    assert "after" not in c.out() and "next" not in c.out()
    assert wait_gone(int(pidfile.read_text()))


def test_background_process_holding_the_pipe_does_not_hang_the_task(tmp_path) -> None:
    pidfile = tmp_path / "bg.pid"
    result, c = run_bounded(tmp_path, {"script": [f"sleep 600 & echo $! > {pidfile}; echo done"]})
    assert result.status == "COMPLETED" and c.out() == ["done"]
    assert wait_gone(int(pidfile.read_text()))  # left-overs die with the task


def test_task_context_from_file_and_markers(tmp_path) -> None:
    result, _ = run(
        tmp_path,
        {
            "script": [
                "echo '##formicary:context FROM_MARKER=m1'",
                "echo '##formicary:context SHARED=marker'",
                'printf "# comment\\nexport VERSION=\\"1.2\\"\\nSHARED=file\\nbad line\\n" >> "$FORMICARY_CONTEXT_FILE"',
            ]
        },
    )
    assert result.task_context == {"FROM_MARKER": "m1", "SHARED": "file", "VERSION": "1.2"}


def test_reference_context_markers(tmp_path) -> None:
    result, _ = run(
        tmp_path,
        {
            "script": [
                "echo '::add-job-context Version::1.2.3'",
                "echo '::add-task-context Own::a::b'",  # the value is the rest of the line
                "echo '::add-job-context 1bad::x'",  # not a name: ignored
                "echo '##formicary:context Legacy=yes'",
            ]
        },
    )
    assert result.job_context == {"Version": "1.2.3"}
    assert result.task_context == {"Own": "a::b", "Legacy": "yes"}


def test_parse_dotenv() -> None:
    assert parse_dotenv("A=1\n\n#x\nexport B='two'\n C = 3 \n=bad\n1X=bad\nD=a=b") == {
        "A": "1",
        "B": "two",
        "C": "3",
        "D": "a=b",
    }


def test_empty_script_completes(tmp_path) -> None:
    result, _ = run(tmp_path, {})
    assert result.status == "COMPLETED" and result.exit_code == "0"


def test_huge_environment_fails_cleanly(tmp_path) -> None:
    result, _ = run(tmp_path, {"script": ["true"]}, variables={f"V{i}": "x" * 100_000 for i in range(40)})
    assert result.status == "FAILED" and result.error_code == "ERR_EXECUTOR"


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX only")
def test_parallel_executions_are_independent(tmp_path) -> None:
    ex = ShellExecutor()
    results: dict[int, str] = {}

    def go(i: int) -> None:
        c = Ctx(tmp_path / str(i))
        res = ex.execute(make_req({"script": [f"echo {i}; exit {i % 3}"]}), c.ctx)
        results[i] = f"{res.exit_code}:{c.out()[0]}"

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {i: f"{i % 3}:{i}" for i in range(6)}
