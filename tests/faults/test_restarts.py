"""A standalone server killed with -9 mid-work and started again (issue 14, finding 1): its ant
comes back under the same id at once, so only its new start time tells the queen that what
the old process was running is lost."""

import time

import pytest

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
