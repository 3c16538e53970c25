"""A standalone server killed with -9 mid-work and started again (issue 14, finding 1): its ant
comes back under the same id at once, so only its new start time tells the queen that what
the old process was running is lost."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ants.config import AntConfig
from ants.messaging import InProcessTransport
from ants.worker import AntWorker
from tests.faults.deploy import Deployment, overlaps, runs_of, wait_until

pytestmark = pytest.mark.faults


def test_standalone_killed_mid_work_resumes_at_once(tmp_path):  # type: ignore[no-untyped-def]
    server = Deployment("standalone", tmp_path, concurrency=2, tick=0.4).setup()
    try:
        ids = server.submit(8)
        wait_until(lambda: len(runs_of(server.markers)) >= 2, 60, "two tasks to run")
        server.kill("standalone")  # two tasks EXECUTING, the rest READY or PENDING
        restarted = time.monotonic()
        server.start("standalone")
        probe = server.submit(1)[0]
        wait_until(lambda: server.first_trace_of(probe), 30, "the server to take new work")
        taken_after = time.monotonic() - restarted
        states = server.wait_all_ended(timeout=60)
        assert all(states[i] == "COMPLETED" for i in [*ids, probe]), states
        assert not overlaps(runs_of(server.markers))
        # the tasks the killed process ran were sent again as new attempts, on the new process
        resent = [t for t in server.tasks() if t[2] > 1]
        assert resent and all("restarted" in t[4] or t[4] == "" for t in resent), resent
        assert taken_after < 30
    finally:
        server.stop()


def test_a_restarted_ant_kills_only_the_commands_its_previous_run_left(tmp_path):  # type: ignore[no-untyped-def]
    """Commands run in sessions of their own, so a ``kill -9`` of an ant leaves them running; the
    ant started again under the same work root kills them before it registers, and nothing else."""
    root, other = tmp_path / "ant", tmp_path / "other-ant"

    def command(workdir: Path) -> subprocess.Popen:
        workdir.mkdir(parents=True)
        env = {**os.environ, "FORMICARY_WORKDIR": str(workdir)}
        return subprocess.Popen(["sh", "-c", "sleep 60"], env=env, start_new_session=True)

    left, elsewhere, unrelated = command(root / "7-1"), command(other / "7-1"), command(root / "kept" / "7-1")
    try:
        config = AntConfig(ant_id="ant-r", methods=["SHELL"], work_root=root)
        ant = AntWorker(config, InProcessTransport())
        assert ant.stop_previous_tasks() == 1
        assert left.wait(timeout=10) == -signal.SIGKILL
        assert elsewhere.poll() is None and unrelated.poll() is None
    finally:
        for proc in (left, elsewhere, unrelated):
            proc.kill()
            proc.wait()
