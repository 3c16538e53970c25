"""The Celery baseline: W1 and W2 through Celery on the same Redis, in the same sitting.

A user comparing tools would run the same work through Celery: a prefork worker with
concurrency 2, Redis as broker and result backend, each task running ``true`` the way the ant's
SHELL executor does (``/bin/sh -c true`` with its output piped). W1 is a chain of 5 such tasks
per request (``chain(t.si() x 5)``), W2 single tasks, all sent at once. Each task returns when
it started and ended (wall clock), so the measure is the same as Formicary's: from the first
send to the last task's end, read from what the work recorded, not when the driver noticed.

The worker is ``celery -A bench.celery_baseline worker`` in its own process; this module
imports no Django (settings come from ``BENCH_CELERY_REDIS`` and ``BENCH_CELERY_QUEUE``).
``python -m bench.celery_baseline --redis URL --sizes JSON`` runs both workloads and prints a
``RESULT`` line of JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery, chain

from bench import procstat

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2

app = Celery("bench_celery")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/0"),
    task_default_queue=os.environ.get("BENCH_CELERY_QUEUE", "bench-celery"),
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.true")
def run_true() -> tuple[float, float]:
    """``true`` as the ant's SHELL executor runs a command; returns its start and end times."""
    start = time.time()
    subprocess.run(["/bin/sh", "-c", "true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, check=True)  # fmt: skip
    return start, time.time()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _parts_cpu(worker_pid: int) -> dict[str, float]:
    """CPU seconds so far of the shells the pool ran and of Redis (as the bench splits its own)."""
    from urllib.parse import urlsplit

    out = {"tasks": sum(procstat.reaped_cpu_secs(c) for c in procstat.children(worker_pid))}
    redis = procstat.listening_on(urlsplit(app.conf.broker_url).port or 6379, "redis-server")
    if redis:
        out["redis"] = procstat.tree_cpu_secs(redis)
    return out


def _measure(name: str, submit: Any, tasks: int, worker_pid: int, timeout: float) -> dict[str, Any]:
    cpu0, busy0 = procstat.tree_cpu_secs(worker_pid), procstat.machine_busy_secs()
    parts0 = _parts_cpu(worker_pid)
    t0 = time.time()
    results, sent_at = submit()
    submit_secs = time.time() - t0
    # wait as the Formicary driver does: one cheap look every 50 ms (here: how many final results
    # the backend holds), so the driver takes little CPU from the run it measures
    keys = [app.backend.get_key_for_task(r.id) for r in results]
    deadline = time.monotonic() + timeout
    while app.backend.client.exists(*keys) < len(keys):
        if time.monotonic() > deadline:
            raise SystemExit(f"Celery {name}: not finished after {timeout}s")
        time.sleep(0.05)
    spans: list[tuple[float, float]] = []
    firsts: list[float] = []
    for result, sent in zip(results, sent_at, strict=True):
        # a chain's result is its last task's; its parents hold the earlier tasks' times
        node, chained = result, []
        while node is not None:
            chained.append(node.get(timeout=timeout))
            node = node.parent
        spans += chained
        firsts.append(min(s for s, _ in chained) - sent)
    end = max(e for _, e in spans)
    wall = end - t0
    busy = procstat.machine_busy_secs() - busy0
    parts1 = _parts_cpu(worker_pid)
    assert len(spans) == tasks, (name, len(spans), tasks)
    return {
        "requests": len(results), "tasks": tasks, "wall_s": wall, "submit_s": submit_secs,
        "tasks_per_s": tasks / wall, "wall_ms_per_task": wall * 1000 * CONCURRENCY / tasks,
        "latency_p50_ms": _pct(firsts, 0.5) * 1000, "latency_p95_ms": _pct(firsts, 0.95) * 1000,
        # the worker's main process and its pool children (prefork): what Celery spends per task
        "worker_cpu_ms_per_task": (procstat.tree_cpu_secs(worker_pid) - cpu0) * 1000 / tasks,
        "machine_cpu_ms_per_task": busy * 1000 / tasks,
        "cpu_ms_per_task": {name: (parts1[name] - parts0[name]) * 1000 / tasks for name in parts1},
    }  # fmt: skip


def run(redis_url: str, sizes: dict[str, int], workloads: list[str]) -> dict[str, Any]:
    queue = f"bench-celery-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "BENCH_CELERY_REDIS": redis_url, "BENCH_CELERY_QUEUE": queue}
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_default_queue=queue)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.celery_baseline", "worker", "--pool", "prefork",
         "--concurrency", str(CONCURRENCY), "--loglevel", "WARNING", "-Q", queue, "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out: dict[str, Any] = {}
    try:
        # warm-up, as for Formicary: the worker is up and both pool processes have run a task
        run_true.delay().get(timeout=120)
        for r in [run_true.delay() for _ in range(CONCURRENCY * 2)]:
            r.get(timeout=60)

        def w1() -> tuple[list[Any], list[float]]:
            sent, results = [], []
            for _ in range(sizes["w1"]):
                sent.append(time.time())
                results.append(chain(*(run_true.si() for _ in range(5))).apply_async())
            return results, sent

        def w2() -> tuple[list[Any], list[float]]:
            sent, results = [], []
            for _ in range(sizes["w2"]):
                sent.append(time.time())
                results.append(run_true.delay())
            return results, sent

        if "W1" in workloads:
            out["W1"] = _measure("W1", w1, sizes["w1"] * 5, worker.pid, timeout=300)
        if "W2" in workloads:
            out["W2"] = _measure("W2", w2, sizes["w2"], worker.pid, timeout=300)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--sizes", required=True, help="JSON of the workload sizes (w1, w2)")
    parser.add_argument("--workloads", nargs="+", default=["W1", "W2"])
    args = parser.parse_args()
    result = run(args.redis, json.loads(args.sizes), args.workloads)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
