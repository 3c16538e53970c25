"""Orphans of tasks are reaped by the ant (ants/reaper.py), and nothing else is: real processes,
the real kernel's subreaper, on this process. It is one only during these tests: a subreaper
adopts every orphan below it, the daemons later tests start and kill too."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ants import reaper
from tests.ants.test_ant_shell import run
from tests.engine.test_control import wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers: Linux")


@pytest.fixture(autouse=True)
def subreaper():  # type: ignore[no-untyped-def]
    """This process a subreaper for the test, and no longer after it."""
    assert reaper.enable()
    yield
    reaper.disable()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid), or None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def test_an_orphan_a_task_left_is_adopted_and_reaped_once_it_exits(tmp_path) -> None:
    pid_file = tmp_path / "orphan.pid"
    # the subshell starts sleep in the background and exits: sleep is orphaned (and killed with
    # the task's process group at its end)
    result, _ = run(tmp_path, {"script": [f"(sleep 0.5 </dev/null >/dev/null 2>&1 & echo $! > {pid_file})"]})
    assert result.status == "COMPLETED"
    pid = int(pid_file.read_text())
    state = _stat(pid)
    assert state is not None and state[1] == os.getpid()  # adopted here, not by PID 1
    assert wait_until(lambda: (_stat(pid) or ("gone",))[0] == "Z")  # exited: a zombie until waited for
    assert reaper.reap() >= 1
    assert _stat(pid) is None


def test_a_daemon_a_task_started_in_a_session_of_its_own_is_reaped_too(tmp_path) -> None:
    pid_file = tmp_path / "daemon.pid"
    # the daemon writes its pid once in its own session (setsid itself may fork first); the task
    # waits for that, since the ant kills what is left in the task's process group at its end
    daemon = f"echo $$ > {pid_file}.new && mv {pid_file}.new {pid_file} && exec sleep 0.5"
    started = f"setsid sh -c '{daemon}' </dev/null >/dev/null 2>&1 &"
    result, _ = run(tmp_path, {"script": [f"{started} while [ ! -s {pid_file} ]; do sleep 0.01; done"]})
    assert result.status == "COMPLETED"
    pid = int(pid_file.read_text())
    assert os.getsid(pid) == pid  # a session of its own, not the task's
    assert wait_until(lambda: (_stat(pid) or ("gone",))[0] == "Z")
    assert reaper.reap() >= 1
    assert _stat(pid) is None


def test_the_process_own_children_are_left_to_their_waiters() -> None:
    """A child this process started in its own session (a render worker, ``dot``)."""
    beside = subprocess.Popen(["sh", "-c", "exit 4"])
    assert wait_until(lambda: (_stat(beside.pid) or ("gone",))[0] == "Z")
    assert reaper.reap() == 0
    assert beside.wait(timeout=5) == 4  # its status was not taken


def test_a_task_shells_exit_status_is_never_taken_by_a_reap(tmp_path) -> None:
    stop = threading.Event()

    def reap_all_the_time() -> None:
        while not stop.is_set():
            reaper.reap()

    thread = threading.Thread(target=reap_all_the_time, daemon=True)
    thread.start()
    try:
        for code in range(1, 101):  # 100 shells, each racing the reaper
            result, _ = run(tmp_path, {"script": [f"exit {code}"]})
            assert result.exit_code == str(code)
    finally:
        stop.set()
        thread.join(10)
