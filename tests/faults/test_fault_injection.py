"""Fault injection: a deployment under steady work has one part killed with -9 at a random point
per round and started again. Checked: every request ends, no task ever runs twice at once (each
run leaves a timed trace, see ``deploy.PROBE``), and new work starts within 10 s of each restart.

``FORMICARY_FAULT_ROUNDS`` (default 10 per deployment) and ``FORMICARY_FAULT_BUDGET_SECS`` (60:
no round starts after that, once three ran) bound the rounds, ``FORMICARY_FAULT_SEED`` sets the
random choices, and ``FORMICARY_FAULT_REPORT`` names a JSON-lines file the figures are appended
to (``docs/reliability.md`` reports them).
"""

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.faults.deploy import Deployment, Postgres, Redis, overlaps, runs_of, wait_until

ROUNDS = int(os.environ.get("FORMICARY_FAULT_ROUNDS", "10"))
# No new round starts after this many seconds of injecting (once three rounds ran): the suite's
# time in the test command stays fixed on a slow machine; a longer run raises both.
BUDGET_SECS = float(os.environ.get("FORMICARY_FAULT_BUDGET_SECS", "60"))
MIN_ROUNDS = 3
# the suite's own bounds (set-up, rounds, the drain) instead of the project's 300 s per test
pytestmark = [pytest.mark.faults, pytest.mark.timeout(max(300, 240 + min(BUDGET_SECS, ROUNDS * 60) * 1.5))]
NEW_WORK_WITHIN_SECS = 10.0


@dataclass
class Round:
    n: int
    killed: str
    after_secs: float  # from the round's submit to the kill
    down_secs: float  # from the kill to the restart
    runs_at_kill: int  # task runs traced so far (how far the work was)
    up_secs: float  # from the restart to the part being up (its process start-up)
    accepted_secs: float  # from the restart to a new request accepted by the API
    new_work_secs: float  # from the restart to the first trace of a request submitted after it

    @property
    def recovery_secs(self) -> float:
        """What recovering takes the system once the restarted part is up: new work running."""
        return round(self.new_work_secs - self.up_secs, 2)


def _inject(deployment: Deployment, parts: list[str], rng: random.Random) -> tuple[list[Round], list[int]]:
    rounds, ids = [], []
    order: list[str] = []
    started = time.monotonic()
    for n in range(1, ROUNDS + 1):
        if n > MIN_ROUNDS and time.monotonic() - started > BUDGET_SECS:
            break
        if not order:
            order = rng.sample(parts, len(parts))  # every part in turn, in a random order
        part = order.pop()
        ids += deployment.submit(rng.randint(2, 6))
        after = rng.uniform(0.05, 1.5)
        time.sleep(after)
        runs = len(runs_of(deployment.markers))
        deployment.kill(part)
        down = rng.uniform(0.0, 1.0)
        time.sleep(down)
        restarted = time.time()
        deployment.start(part)
        deployment.wait_up(part)
        up = time.time()
        probe = deployment.submit(1)[0]
        accepted = time.time()
        ids.append(probe)
        first = wait_until(
            lambda p=probe: deployment.first_trace_of(p), 60, f"new work after {part} restarted"
        )
        rounds.append(Round(n, part, round(after, 2), round(down, 2), runs, round(up - restarted, 2),
                            round(accepted - restarted, 2), round(first - restarted, 2)))  # fmt: skip
    return rounds, ids


def _check_and_report(mode: str, deployment: Deployment, rounds: list[Round], ids: list[int], seed: int,
                      started: float) -> None:  # fmt: skip
    states = deployment.wait_all_ended(timeout=180)
    runs = runs_of(deployment.markers)
    twice = overlaps(runs)
    tasks = deployment.tasks()
    figures = {
        "mode": mode, "seed": seed, "rounds": [{**asdict(r), "recovery_secs": r.recovery_secs} for r in rounds], "requests": len(ids),
        "ended": sum(1 for i in ids if states.get(i) in ("COMPLETED", "FAILED", "CANCELLED")),
        "completed": sum(1 for i in ids if states.get(i) == "COMPLETED"),
        "task_runs": len(runs), "resent_tasks": sum(1 for t in tasks if t[2] > 1),
        "overlapping_runs": len(twice), "secs": round(time.monotonic() - started, 1),
        "max_new_work_secs": max(r.new_work_secs for r in rounds),
        "max_recovery_secs": max(r.recovery_secs for r in rounds),
    }  # fmt: skip
    print(json.dumps(figures, indent=1))
    if os.environ.get("FORMICARY_FAULT_REPORT"):
        with open(os.environ["FORMICARY_FAULT_REPORT"], "a") as out:
            out.write(json.dumps(figures) + "\n")
    assert figures["ended"] == len(ids), states
    assert not twice, twice
    # the bound is on the system, not on how long the machine takes to start a Python process
    # (seconds on a busy CI machine): docs/reliability.md reports both
    slow = [r for r in rounds if r.recovery_secs > NEW_WORK_WITHIN_SECS]
    assert not slow, slow


def _seed() -> int:
    return int(os.environ.get("FORMICARY_FAULT_SEED") or random.randrange(1 << 30))


def test_standalone_survives_kill_9_at_random_points(tmp_path: Path) -> None:
    started, seed = time.monotonic(), _seed()
    deployment = Deployment("standalone", tmp_path, concurrency=4).setup()
    try:
        rounds, ids = _inject(deployment, ["standalone"], random.Random(seed))
        _check_and_report("standalone", deployment, rounds, ids, seed, started)
    finally:
        deployment.stop()


def test_distributed_survives_kill_9_of_any_part(tmp_path: Path) -> None:
    started, seed = time.monotonic(), _seed()
    (tmp_path / "redis").mkdir()
    postgres, redis = Postgres(), Redis(tmp_path / "redis")
    deployment = Deployment("distributed", tmp_path, ants=2, concurrency=4, postgres=postgres, redis=redis)
    try:
        deployment.setup()
        parts = ["queen", "ant-1", "web", "redis", "postgres"]
        rounds, ids = _inject(deployment, parts, random.Random(seed))
        _check_and_report("distributed", deployment, rounds, ids, seed, started)
    finally:
        deployment.stop()
        redis.stop()
        postgres.stop()
