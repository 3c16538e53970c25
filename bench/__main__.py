"""``python -m bench``: the orchestration-overhead benchmark, in one go, on this machine.

It measures the floor (``sh -c true`` spawned from Python at the same concurrency, a Redis
round trip, a PostgreSQL UPDATE + COMMIT), then each workload in standalone mode (threads, SQLite
in a temp dir, in-process messaging) and in distributed mode (``manage.py queen`` and
``manage.py ant`` processes, throw-away PostgreSQL and Redis started by scripts/services.sh):

- W1 chain: requests of a 5-task chain of SHELL ``true`` tasks, submitted at once;
- W2 fan: single-task requests of SHELL ``true``, submitted at once;
- W3 backlog: the scheduler's pick (``Engine.schedule(limit=1)``) with few and many pending
  requests in the table: time and queries;
- W4 logs: one task printing many lines: all stored in order, memory growth of queen and ant;
- L latency: submit-to-start with an idle ant (the task writes the time it began);
- W5 fan-out (``--workloads W5``, not by default): one request whose step fans out to 1,000
  SHELL ``true`` instances with ``max_parallel: 0``; tasks/s and its ratio to W2's in the same run
  (``--pairs N`` runs W2 and W5 alternately N times, so the machine's load falls on both alike);
- W6 scale (``--workloads W6``, not by default): a simulated fleet of 10, 100 and 1,000 ants
  fed zero-work tasks; the queen's CPU per task, dispatch latency, the CPU of idle heartbeats;
- W7 history (``--workloads W7 --rows N``, not by default): N finished requests and 5N task
  executions bulk-inserted; p95 of submit-to-start and the read paths against an empty database;
- W8 soak (``--workloads W8 --minutes M``, never in CI): a steady rate for M minutes, the RSS of
  every process sampled.

W1 and W2 also run through Celery in the same sitting (``bench.celery_baseline``: prefork,
concurrency 2, Redis broker and backend on the bench's Redis, each task ``/bin/sh -c true`` as
the ant runs it) whenever Redis is there (distributed mode); each row then shows its ratio to
Celery (tasks/s of the row / Celery's) next to its ratio to the floor. ``--no-celery`` skips it.

Worker concurrency is 2 everywhere. ``--smoke`` runs tiny sizes (CI proves the suite works).
Results are printed as a table and written as JSON (``--out``). ``--profile DIR`` writes
profiles there: a pyinstrument profile of the standalone queen thread per workload, and py-spy
recordings of the distributed queen and ant processes during each workload's measured part
(``distributed-<W>-queen.txt`` and ``-ant.txt``, raw collapsed stacks for flame graphs, and
``distributed-<W>-top.txt``, where the samples went).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from formicary_site import keys

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2

FULL = {"w1": 20, "w2": 200, "w3_small": 100, "w3_big": 10_000, "w3_picks": 20, "w4": 200_000, "probe": 20,
        "floor_spawns": 2000, "floor_rtts": 2000, "w6_tasks": 20_000, "w6_fleets": [10, 100, 1000],
        "w6_idle_secs": 30, "w7_rows": 1_000_000, "w7_samples": 40, "w8_minutes": 30, "w8_rate": 0, "w5": 1000}  # fmt: skip
SMOKE = {"w1": 2, "w2": 6, "w3_small": 10, "w3_big": 60, "w3_picks": 3, "w4": 2000, "probe": 2,
         "floor_spawns": 40, "floor_rtts": 50, "w6_tasks": 60, "w6_fleets": [10, 100], "w6_idle_secs": 3,
         "w7_rows": 600, "w7_samples": 5, "w8_minutes": 0.2, "w8_rate": 20, "w5": 20}  # fmt: skip
WORKLOADS = ["W1", "W2", "W3", "W4", "L"]  # the default set
EXTRA = ["W5", "W6", "W7", "W8"]  # fan-out, scale, history and soak: asked for by name
DISTRIBUTED_ONLY = {"W6", "W7"}  # a fleet over Redis, a history in PostgreSQL


# -- the floor -----------------------------------------------------------------------------------


def floor_spawn(n: int, concurrency: int = CONCURRENCY) -> dict[str, float]:
    """``sh -c true`` from Python, ``concurrency`` at a time: what a task costs with no orchestrator."""
    left = [n]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            subprocess.run(["sh", "-c", "true"], check=True)

    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    return {"spawns_per_s": n / wall, "ms_per_task": wall * 1000 * concurrency / n}


def floor_redis(url: str, n: int) -> float:
    """Median ms of XADD + XREADGROUP + XACK on one stream (a message handed over and acked)."""
    import redis

    r = redis.Redis.from_url(url)
    key = f"bench-floor-{uuid.uuid4().hex[:6]}"
    r.xgroup_create(key, "g", id="0", mkstream=True)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r.xadd(key, {"m": b"x" * 200})
        reply = r.xreadgroup("g", "c", {key: ">"}, count=1)
        r.xack(key, "g", reply[0][1][0][0])
        times.append((time.perf_counter() - t) * 1000)
    r.delete(key)
    return statistics.median(times)


def floor_postgres(url: str, n: int) -> float:
    """Median ms of a single-row UPDATE + COMMIT."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id int primary key, n int)")
        conn.execute("INSERT INTO bench_floor VALUES (1, 0) ON CONFLICT DO NOTHING")
        conn.commit()
        times = []
        for _ in range(n):
            t = time.perf_counter()
            conn.execute("UPDATE bench_floor SET n = n + 1 WHERE id = 1")
            conn.commit()
            times.append((time.perf_counter() - t) * 1000)
        conn.execute("DROP TABLE bench_floor")
        conn.commit()
    return statistics.median(times)


# -- services ------------------------------------------------------------------------------------


class Services:
    """Throw-away PostgreSQL and Redis from scripts/services.sh; stopped when this object closes
    (the helper shell waits on its stdin and its EXIT trap removes everything)."""

    def __init__(self) -> None:
        script = (
            ". scripts/services.sh; trap stop_services EXIT; start_services postgres redis >&2; "
            'echo "DATABASE_URL=$DATABASE_URL"; echo "REDIS_URL=$REDIS_URL"; echo READY; read _'
        )
        self.proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)  # fmt: skip
        self.env: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line == "READY":
                break
            key, _, value = line.partition("=")
            self.env[key] = value
        if "DATABASE_URL" not in self.env:
            raise SystemExit("could not start PostgreSQL and Redis (scripts/services.sh)")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


# -- running the workloads -----------------------------------------------------------------------


def run_child(workload: str, mode: str, env: dict[str, str], sizes: dict[str, int], tmp: Path,
              profile: str | None = None) -> dict[str, Any]:  # fmt: skip
    cmd = [sys.executable, "-m", "bench.workload", "--mode", mode, "--workload", workload, "--sizes",
           json.dumps(sizes), "--tmp", str(tmp)]  # fmt: skip
    if profile:
        cmd += ["--profile", profile]
    # W6-W8 run as long as their sizes ask (a million rows, a 30-minute soak)
    limit = 1800 if workload in [*WORKLOADS, "W5"] else 6 * 3600
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"{workload} {mode} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    env["LOG_LEVEL"] = "WARNING"
    # throw-away keys (processes without keys refuse to start); one organization, tasks as root
    env.setdefault("SECRET_KEY", keys.new_secret_key())
    env.setdefault("FORMICARY_ENCRYPTION_KEY", keys.new_fernet_key())
    env.setdefault("FORMICARY_ANT_SHARED_SHELL", "true")
    env.setdefault("FORMICARY_ANT_TASK_USERS", "false")  # its work folders are in a private temp folder
    return env


def run_standalone(workloads: list[str], sizes: dict[str, int], tmp: Path, log: Any,
                   profile_dir: Path | None) -> dict[str, Any]:  # fmt: skip
    env = base_env()
    template = tmp / "standalone-template"
    template.mkdir()
    env["FORMICARY_DATA_DIR"] = str(template)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = {}
    for w in [w for w in workloads if w not in DISTRIBUTED_ONLY]:
        data = tmp / f"standalone-{w}"
        shutil.copytree(template, data)
        env["FORMICARY_DATA_DIR"] = str(data)
        log(f"standalone {w} ...")
        profile = str(profile_dir / f"standalone-{w}.txt") if profile_dir else None
        out[w] = run_child(w, "standalone", dict(env), sizes, data, profile)
        log(f"standalone {w}: {summary(w, out[w])}")
    return out


def run_distributed(workloads: list[str], sizes: dict[str, int], tmp: Path, urls: dict[str, str],
                    log: Any, profile_dir: Path | None) -> dict[str, Any]:  # fmt: skip
    env = base_env()
    env["REDIS_URL"] = urls["REDIS_URL"]
    admin = urls["DATABASE_URL"]
    tag = uuid.uuid4().hex[:6]
    template = f"bench_{tag}_template"
    _pg_admin(admin, f"CREATE DATABASE {template}")
    env["DATABASE_URL"] = _with_db(admin, template)
    env["FORMICARY_DATA_DIR"] = str(tmp / "distributed-data")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = {}
    try:
        for w in workloads:
            name = f"bench_{tag}_{w.lower()}"
            _pg_admin(admin, f"CREATE DATABASE {name} TEMPLATE {template}")
            data = tmp / f"distributed-{w}"
            data.mkdir()
            child_env = {**env, "DATABASE_URL": _with_db(admin, name), "FORMICARY_DATA_DIR": str(data),
                         "FORMICARY_REDIS_PREFIX": f"bench{tag}{w.lower()}"}  # fmt: skip
            log(f"distributed {w} ...")
            profile = str(profile_dir / f"distributed-{w}") if profile_dir and w != "W3" else None
            out[w] = run_child(w, "distributed", child_env, sizes, data, profile)
            log(f"distributed {w}: {summary(w, out[w])}" + (f"; profiles {profile}-*.txt" if profile else ""))
            _pg_admin(admin, f"DROP DATABASE IF EXISTS {name}")
    finally:
        _pg_admin(admin, f"DROP DATABASE IF EXISTS {template}")
    return out


def run_pairs(
    args: argparse.Namespace, sizes: dict[str, Any], tmp: Path, report: dict[str, Any], log: Any
) -> None:
    """W2 then W5, ``--pairs`` times in each mode: their ratio pair by pair, and the median."""
    sizes = {**sizes, "w2": sizes["w5"]}  # as many tasks in both: runs of about the same length
    for mode in args.modes:
        runs = []
        services = None
        try:
            if mode == "distributed":
                services = Services() if not args.use_env else None
                urls = services.env if services else {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL")}
            for n in range(args.pairs):
                where = tmp / f"{mode}-pair-{n}"
                where.mkdir()
                if mode == "standalone":
                    runs.append(run_standalone(["W2", "W5"], sizes, where, log, None))
                else:
                    runs.append(run_distributed(["W2", "W5"], sizes, where, urls, log, None))
                w2, w5 = runs[-1]["W2"]["tasks_per_s"], runs[-1]["W5"]["tasks_per_s"]
                log(f"{mode} pair {n + 1}: W2 {w2:.1f} tasks/s, W5 {w5:.1f} tasks/s, ratio {w5 / w2:.2f}, "
                    f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
        finally:
            if services:
                services.close()
        report[f"{mode}_pairs"] = runs
        ratios = [r["W5"]["tasks_per_s"] / r["W2"]["tasks_per_s"] for r in runs]
        report[f"{mode}_pairs_median_ratio"] = statistics.median(ratios)
        log(f"{mode}: median W5/W2 ratio {statistics.median(ratios):.2f} over {len(ratios)} pairs")


# -- the report ----------------------------------------------------------------------------------


def summary(w: str, r: dict[str, Any]) -> str:
    if w == "W3":
        keys = [k for k in r if k.isdigit()]
        return ", ".join(f"{r[k]['pending']} pending: {r[k]['schedule_ms_p50']:.2f} ms, {r[k]['queries']} queries"
                         for k in keys) + f"; ratio {r['ratio']:.2f}"  # fmt: skip
    if w == "W4":
        return (f"{r['lines_stored']}/{r['lines']} lines in order={r['all_stored_in_order']}, {r['lines_per_s']:.0f} "
                f"lines/s, RSS growth queen {r['rss_growth_mb']['queen']:.1f} MB ant {r['rss_growth_mb']['ant']:.1f} MB")  # fmt: skip
    if w in ("W6", "W7", "W8"):
        return r.get("summary", "done")
    if w == "L":
        return f"submit-to-start p50 {r['latency_p50_ms']:.1f} ms p95 {r['latency_p95_ms']:.1f} ms"
    return f"{r['tasks_per_s']:.1f} tasks/s, p50 {r['latency_p50_ms']:.1f} ms"


def run_celery(workloads: list[str], sizes: dict[str, int], redis_url: str) -> dict[str, Any]:
    """W1 and W2 through Celery on the same Redis (``bench.celery_baseline``, its own process)."""
    cmd = [sys.executable, "-m", "bench.celery_baseline", "--redis", redis_url, "--sizes", json.dumps(sizes),
           "--workloads", *workloads]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=base_env(), capture_output=True, text=True, timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"Celery baseline failed (exit {proc.returncode}):\n{proc.stderr[-5000:]}")


def derive(report: dict[str, Any]) -> None:
    """Overhead per task, ratio to the floor and to Celery for the batch workloads."""
    floor = report["floor"]["spawn"]["ms_per_task"]
    for mode in ("standalone", "distributed"):
        for run in [report.get(mode, {}), *report.get(f"{mode}_pairs", [])]:
            if run.get("W5") and run.get("W2"):
                run["W5"]["ratio_to_W2"] = run["W5"]["tasks_per_s"] / run["W2"]["tasks_per_s"]
    for mode in ("standalone", "distributed", "celery"):
        for w in ("W1", "W2"):
            r = report.get(mode, {}).get(w)
            if r:
                r["overhead_ms_per_task"] = r["wall_ms_per_task"] - floor
                r["ratio_to_floor"] = r["wall_ms_per_task"] / floor
                celery = report.get("celery", {}).get(w)
                r["ratio_to_celery"] = r["tasks_per_s"] / celery["tasks_per_s"] if celery else None


HOW = """\
How each number is taken:
- tasks/s, overhead, x floor: from the submit to the last task's end as recorded by the work itself
  (Formicary: the database; Celery: the time each task returns); x floor = wall x concurrency / tasks /
  floor per task (sh -c true spawned from Python, 2 at a time); x Celery = this row's tasks/s / Celery's
  in the same run (above 1: faster than Celery).
- submit-to-start: request row created (Celery: the task sent) to its first task started (W1/W2: sent
  to the ant; Celery: the task began); L: to the task's first instruction.
- queen / ant CPU: user + system seconds of that process (Celery: the worker's main and pool
  processes, in the ant column); machine CPU: busy time of all cores per task (/proc/stat), split in
  brackets where measured: tasks = the shells the ant (Celery: its pool) ran and reaped, postgres = the
  server and its backends, redis = the server (the rest is the queen, the ant, the driver, the kernel).
- per task, PostgreSQL transactions and rows written (pg_stat_database, less the driver's own polls and
  submit, about) and Redis commands (INFO total_commands_processed): counts of work, which the machine's
  load does not change, to compare versions of the code on a busy machine.
- W6: simulated ants (bench.fleet, real protocol over Redis, answering at once) fed zero-work tasks;
  queen CPU from /proc of the queen process; dispatch = task READY (its execution created) to sent
  (STARTED); queen -> ant = the request's send stamp to the simulated ant reading it; idle queen CPU =
  queen CPU seconds per second while the fleet only heartbeats (every ant every 5 s).
- W7: p95 over repeated calls of each read path in the bench process (Django test client, a logged-in
  user of the organization), before (empty) and after bulk-inserting the history.
- W8: RSS of every process sampled every few seconds; growth = last minus the first sample after warm-up."""


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _split(r: dict[str, Any]) -> str:
    """The machine's CPU per task by part, where the run measured them (distributed)."""
    parts = {k: v for k, v in r.get("cpu_ms_per_task", {}).items() if k in ("tasks", "postgres", "redis")}
    work = r.get("work_per_task", {})
    counted = (
        f"; per task {work['pg_transactions']:.1f} PostgreSQL transactions, {work['pg_rows_written']:.1f} rows "
        f"written, {work['redis_commands']:.1f} Redis commands"
        if work
        else ""
    )
    return (f" ({', '.join(f'{k} {v:.1f}' for k, v in parts.items())})" if parts else "") + counted


def table(report: dict[str, Any]) -> str:
    rows = ["| workload | mode | tasks/s | overhead ms/task | submit-to-start p50 / p95 ms | queen CPU ms/task | "
            "ant CPU ms/task | peak RSS queen / ant MB | x floor | x Celery | notes |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for w in [*WORKLOADS, "W5"]:
        for mode in ("standalone", "distributed", "celery"):
            r = report.get(mode, {}).get(w)
            if not r:
                continue
            if w == "W5":
                rows.append(
                    f"| W5 | {mode} | {r['tasks_per_s']:.1f} | | {r['latency_p50_ms']:.1f} (first instance) | "
                    f"{r['queen_cpu_ms_per_task']:.2f} | | {r['peak_rss_mb']['queen']:.0f} / | | | {r['tasks']} "
                    f"instances in {r['wall_s']:.2f} s; x W2 {_ratio(r.get('ratio_to_W2'))} |"
                )
            elif mode == "celery":
                rows.append(
                    f"| {w} | celery | {r['tasks_per_s']:.1f} | {r['overhead_ms_per_task']:.2f} | "
                    f"{r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} | | {r['worker_cpu_ms_per_task']:.2f} | | "
                    f"{r['ratio_to_floor']:.1f} | 1.00 | {r['tasks']} tasks in {r['wall_s']:.2f} s; machine CPU "
                    f"{r['machine_cpu_ms_per_task']:.1f} ms/task{_split(r)}; worker CPU (main + pool) in the ant column; "
                    f"sent in {r['submit_s'] * 1000:.0f} ms |"
                )
            elif w in ("W1", "W2"):
                ant_cpu = r.get("ant_cpu_ms_per_task")
                rows.append(
                    f"| {w} | {mode} | {r['tasks_per_s']:.1f} | {r['overhead_ms_per_task']:.2f} | "
                    f"{r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} | {r['queen_cpu_ms_per_task']:.2f} | "
                    f"{'' if ant_cpu is None else f'{ant_cpu:.2f}'} | "
                    f"{r['peak_rss_mb']['queen']:.0f} / {r['peak_rss_mb']['ant']:.0f} | {r['ratio_to_floor']:.1f} | "
                    f"{_ratio(r.get('ratio_to_celery'))} | {r['tasks']} tasks in {r['wall_s']:.2f} s; machine CPU {r['machine_cpu_ms_per_task']:.1f} "
                    f"ms/task{_split(r)}; submitted in {r['submit_s'] * 1000:.0f} ms, first task sent at "
                    f"{r.get('first_sent_s', 0) * 1000:.0f} ms |"
                )
            elif w == "W3":
                keys = [k for k in r if k.isdigit()]
                small, big = r[keys[0]], r[keys[-1]]
                rows.append(
                    f"| {w} | {mode} | | | | | | | | | pick+start {small['schedule_ms_p50']:.2f} ms with {small['pending']} "
                    f"pending, {big['schedule_ms_p50']:.2f} ms with {big['pending']} (x{r['ratio']:.2f}); "
                    f"{big['queries']} queries; pick query alone x{r['pick_ratio']:.2f} |"
                )
            elif w == "W4":
                rows.append(
                    f"| {w} | {mode} | | | | {r['queen_cpu_s'] * 1000 / r['lines']:.3f} per line | | "
                    f"{r['peak_rss_mb']['queen']:.0f} / {r['peak_rss_mb']['ant']:.0f} | | | "
                    f"{r['lines_stored']} of {r['lines']} lines stored in order: {r['all_stored_in_order']}; "
                    f"{r['lines_per_s']:.0f} lines/s; RSS growth queen {r['rss_growth_mb']['queen']:.1f} MB, "
                    f"ant {r['rss_growth_mb']['ant']:.1f} MB |"
                )
            else:
                rows.append(
                    f"| {w} | {mode} | | | {r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} | | | | | | "
                    f"idle ant, {r['requests']} requests one at a time, to the task's first instruction |"
                )
    return "\n".join(rows)


def extra_tables(report: dict[str, Any]) -> str:
    """W6, W7 and W8 tables (each of its own shape)."""
    parts = []
    for mode in ("standalone", "distributed"):
        runs = report.get(mode, {})
        if "W6" in runs:
            from bench import fleet

            parts.append(fleet.table(runs["W6"]))
        if "W7" in runs:
            from bench import history

            parts.append(history.table(runs["W7"]))
        if "W8" in runs:
            from bench import soak

            parts.append(soak.table(runs["W8"], mode))
    return "\n\n".join(parts)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    except OSError:
        mem = 0
    return f"{os.cpu_count()} cores ({cpu}), {mem} GB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: proves the suite works, measures nothing"
    )
    parser.add_argument("--modes", nargs="+", default=["standalone", "distributed"],
                        choices=["standalone", "distributed"])  # fmt: skip
    parser.add_argument("--workloads", nargs="+", default=WORKLOADS, choices=WORKLOADS + EXTRA)
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery baseline of W1 and W2")
    parser.add_argument("--tasks", type=int, help="W6: zero-work tasks per fleet size")
    parser.add_argument("--ants", type=int, nargs="+", help="W6: fleet sizes (default 10 100 1000)")
    parser.add_argument("--rows", type=int, nargs="+",
                        help="W7: finished requests to generate (5 task executions each); several sizes: "
                             "measured at each as the history grows")  # fmt: skip
    parser.add_argument("--minutes", type=float, help="W8: how long the soak runs")
    parser.add_argument("--pairs", type=int, default=0,
                        help="W5: run W2 and W5 alternately this many times (nothing else), each pair's ratio "
                             "and the median")  # fmt: skip
    parser.add_argument(
        "--rate", type=float, help="W8: requests per second (default: half of a short W2's rate)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"), help="JSON report")
    parser.add_argument("--use-env", action="store_true",
                        help="distributed mode on DATABASE_URL and REDIS_URL from the environment instead of "
                             "starting throw-away servers")  # fmt: skip
    parser.add_argument("--profile", help="folder for profiles: pyinstrument of the standalone queen thread, "
                                          "py-spy of the distributed queen and ant processes")  # fmt: skip
    args = parser.parse_args()
    if args.pairs:
        args.workloads = ["W2", "W5"]
    sizes: dict[str, Any] = dict(SMOKE if args.smoke else FULL)
    for arg, key in (("tasks", "w6_tasks"), ("ants", "w6_fleets"), ("rows", "w7_rows"), ("minutes", "w8_minutes"),
                     ("rate", "w8_rate")):  # fmt: skip
        if getattr(args, arg) is not None:
            sizes[key] = getattr(args, arg)
    started = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    report: dict[str, Any] = {"date": datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                              "sizes": sizes, "concurrency": CONCURRENCY, "smoke": args.smoke}  # fmt: skip
    spawn = floor_spawn(sizes["floor_spawns"])
    report["floor"] = {"spawn": spawn}
    log(f"floor: sh -c true {spawn['ms_per_task']:.2f} ms per task at concurrency {CONCURRENCY} "
        f"({spawn['spawns_per_s']:.0f}/s)")  # fmt: skip
    profile_dir = Path(args.profile) if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="formicary-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.pairs:
            run_pairs(args, sizes, tmp, report, log)
            args.modes = []
        if "standalone" in args.modes:
            report["standalone"] = run_standalone(args.workloads, sizes, tmp, log, profile_dir)
        if "distributed" in args.modes:
            services = None
            if args.use_env:
                urls = {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}
            else:
                services = Services()
                urls = services.env
            try:
                report["floor"]["redis_rtt_ms"] = floor_redis(urls["REDIS_URL"], sizes["floor_rtts"])
                report["floor"]["postgres_update_commit_ms"] = floor_postgres(urls["DATABASE_URL"],
                                                                              sizes["floor_rtts"])  # fmt: skip
                log(f"floor: Redis round trip {report['floor']['redis_rtt_ms']:.3f} ms, PostgreSQL UPDATE+COMMIT "
                    f"{report['floor']['postgres_update_commit_ms']:.3f} ms")  # fmt: skip
                report["distributed"] = run_distributed(args.workloads, sizes, tmp, urls, log, profile_dir)
                batch = [w for w in ("W1", "W2") if w in args.workloads]
                if batch and not args.no_celery:
                    log("celery W1/W2 ...")
                    report["celery"] = run_celery(batch, sizes, urls["REDIS_URL"])
                    log("celery: " + "; ".join(f"{w} {summary(w, r)}" for w, r in report["celery"].items()))
            finally:
                if services:
                    services.close()
    derive(report)
    text = table(report)
    report["table"] = text
    report["extra_tables"] = extra_tables(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    f = report["floor"]
    print(f"\n{report['date']}, {report['machine']}")
    print(f"floor: sh -c true {f['spawn']['ms_per_task']:.2f} ms/task at concurrency {CONCURRENCY} "
          f"({f['spawn']['spawns_per_s']:.0f} spawns/s)" + (f"; Redis round trip {f['redis_rtt_ms']:.3f} ms; "
          f"PostgreSQL UPDATE+COMMIT {f['postgres_update_commit_ms']:.3f} ms" if "redis_rtt_ms" in f else ""))  # fmt: skip
    print(text)
    extra = extra_tables(report)
    if extra:
        print("\n" + extra)
    print("\n" + HOW)
    print(f"\nreport: {out}  ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
