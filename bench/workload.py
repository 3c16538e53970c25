"""One workload in one mode, in its own process (``python -m bench.workload``); prints a JSON result.

The process is the driver: it submits requests through ``requests_submit`` (a fan of requests in
one call, as ``POST /api/jobs/requests/bulk`` does; the latency probe one at a time through
``request_submit``, as ``POST /api/jobs/requests`` does) and reads the outcome from the
database. In ``standalone`` mode the queen, its log writer and one ant run as threads of this
process over the in-process transport (as ``manage.py standalone``); in ``distributed`` mode
they are ``manage.py queen`` and ``manage.py ant`` processes talking over Redis and PostgreSQL. Each workload gets a fresh database and fresh queen and ant, so peaks and
CPU times belong to it alone.

``--profile``: standalone, a pyinstrument profile of the queen thread (the whole run) in that
file; distributed, py-spy recordings of the queen and ant processes during the measured part,
in files starting with that path (see ``bench.spy``).
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import procstat, spy

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2
ANT_ID = "bench-ant"
QUEEN_ID = "bench-queen"

CHAIN = """\
job_type: bench-chain
max_concurrency: 100000
tasks:
- task_type: t1
  method: SHELL
  script: ["true"]
  on_completed: t2
- task_type: t2
  method: SHELL
  script: ["true"]
  on_completed: t3
- task_type: t3
  method: SHELL
  script: ["true"]
  on_completed: t4
- task_type: t4
  method: SHELL
  script: ["true"]
  on_completed: t5
- task_type: t5
  method: SHELL
  script: ["true"]
"""

SINGLE = """\
job_type: bench-single
max_concurrency: 100000
tasks:
- task_type: t1
  method: SHELL
  script: ["true"]
"""

# the items are a job variable, so W5's instances, like W2's tasks, carry no request params
FAN = """\
job_type: bench-fan
max_concurrency: 100000
job_variables:
  Items: "{items}"
tasks:
- task_type: t1
  method: SHELL
  fan_out:
    source: Items
    item_var: item
    max_parallel: 0
  script: ["true"]
"""

LOGS = """\
job_type: bench-logs
max_concurrency: 100000
tasks:
- task_type: t1
  method: SHELL
  timeout: 600
  script: ["seq 1 {{.Lines}}"]
"""

PROBE = """\
job_type: bench-probe
max_concurrency: 100000
tasks:
- task_type: t1
  method: SHELL
  script: ["date +%s.%N > {{.Out}}"]
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# -- the cluster under test ----------------------------------------------------------------------


class Standalone:
    """Queen, log writer and one ant (concurrency 2) as threads of this process."""

    def __init__(self, tmp: Path, profile: str | None = None) -> None:
        from ants.artifact_hooks import install_artifact_hooks
        from ants.config import AntConfig
        from ants.worker import AntWorker
        from artifacts.storage import ant_store
        from jobs.domain.logs import LogWriter
        from jobs.domain.messaging import get_transport
        from jobs.queen.queen import Queen, share_one_process

        share_one_process()  # as manage.py standalone does
        self.transport = get_transport()
        self.queen = Queen(self.transport, queen_id=QUEEN_ID)
        self.writer = LogWriter(self.transport, consumer=QUEEN_ID)
        config = AntConfig(
            ant_id=ANT_ID, concurrency=CONCURRENCY, tags=[], methods=["SHELL"], work_root=tmp / "ant"
        )
        self.ant = AntWorker(config, self.transport)
        install_artifact_hooks(self.ant, ant_store())
        self.tids: dict[str, int] = {}
        self.profile = profile
        self.threads = [
            threading.Thread(target=self._run, args=("queen", self.queen.run_forever), daemon=True),
            threading.Thread(target=self._run, args=("writer", self.writer.run_forever), daemon=True),
            threading.Thread(target=self._run, args=("ant", self.ant.run_forever), daemon=True),
        ]

    def _run(self, name: str, target: Any) -> None:
        self.tids[name] = threading.get_native_id()
        if name != "queen" or not self.profile:
            target()
            return
        from pyinstrument import Profiler  # the queen thread's profile (pyinstrument profiles one thread)

        profiler = Profiler(async_mode="disabled", interval=0.0005)
        profiler.start()
        try:
            target()
        finally:
            profiler.stop()
            Path(self.profile).write_text(profiler.output_text(unicode=False, color=False, show_all=False))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def queen_cpu(self) -> float:
        return sum(procstat.thread_cpu_secs(self.tids[n]) for n in ("queen", "writer") if n in self.tids)

    def ant_cpu(self) -> float | None:
        return None  # the ant's task threads are not told apart from the others in this process

    def pids(self) -> dict[str, int]:
        return {"queen": os.getpid(), "ant": os.getpid()}

    def stop(self) -> None:
        self.queen.stop()
        self.writer.stop()
        self.ant.stop()
        for t in self.threads:
            t.join(timeout=30)
        self.transport.close()


class Distributed:
    """``manage.py queen`` and ``manage.py ant --concurrency 2`` processes over Redis."""

    def __init__(self, tmp: Path, ants: bool = True) -> None:
        self.tmp = tmp
        self.prefix = os.environ["FORMICARY_REDIS_PREFIX"]
        self.procs: dict[str, subprocess.Popen] = {}
        self.with_ant = ants  # W6 brings its own simulated ants

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def start(self) -> None:
        self._spawn("queen", ["queen", "--id", QUEEN_ID])
        if not self.with_ant:
            return
        self._spawn("ant", ["ant", "--id", ANT_ID, "--concurrency", str(CONCURRENCY), "--methods", "SHELL",
                            "--work-root", str(self.tmp / "ant")])  # fmt: skip

    def queen_cpu(self) -> float:
        return procstat.cpu_secs(self.procs["queen"].pid)

    def ant_cpu(self) -> float | None:
        return procstat.cpu_secs(self.procs["ant"].pid)  # its own threads, not the tasks it spawns

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log")
        )


# -- helpers -------------------------------------------------------------------------------------


class World:
    def __init__(self, mode: str, tmp: Path, profile: str | None = None) -> None:
        from jobs.services.definitions import definition_upload
        from orgs import services

        self.user = services.user_ensure(username="bench", org_name="bench", create=True)
        self.org_id = self.user.organization_id
        for text in (CHAIN, SINGLE, LOGS, PROBE):
            definition_upload(org_id=self.org_id, user=self.user, text=text)
        self.profile = profile
        self.polls = 0  # how many times wait_done has asked the database (work counts leave them out)
        self.cluster = Standalone(tmp, profile) if mode == "standalone" else Distributed(tmp)

    def submit(self, job_type: str, params: dict[str, str] | None = None) -> int:
        from jobs.services.requests import request_submit

        return request_submit(org_id=self.org_id, user=self.user, job_type=job_type, params=params or {}).pk

    def submit_many(self, job_type: str, count: int) -> list[int]:
        from jobs.services.requests import requests_submit

        submissions: list[dict[str, Any]] = [{"job_type": job_type}] * count
        return [r.pk for r in requests_submit(org_id=self.org_id, user=self.user, submissions=submissions)]

    def wait_done(self, ids: list[int], timeout: float) -> None:
        from jobs.models import JobRequest
        from jobs.states import JOB_TERMINAL

        terminal = [str(s) for s in JOB_TERMINAL]
        deadline = time.monotonic() + timeout
        # by id range: a poll naming a thousand ids cost PostgreSQL more than what it waits for (the
        # bench's organization submits nothing else meanwhile, so the range holds only these)
        unfinished = JobRequest.objects.filter(
            organization_id=self.org_id, pk__gte=min(ids), pk__lte=max(ids)
        ).exclude(job_state__in=terminal)
        while True:
            self.polls += 1
            left = unfinished.count()
            if not left:
                break
            if time.monotonic() > deadline:
                extra = self.cluster.logs() if isinstance(self.cluster, Distributed) else ""
                raise SystemExit(f"{left} of {len(ids)} requests not finished after {timeout}s\n{extra}")
            # the measured end is the last task's end in the database, not when this poll sees it:
            # polling less often only takes less CPU from what is measured
            time.sleep(0.05)
        # by id range too: a check naming 45,000 ids (a soak's) cost this driver 7 to 16 MB of RSS
        bad = (
            JobRequest.objects.filter(organization_id=self.org_id, pk__gte=min(ids), pk__lte=max(ids))
            .exclude(job_state="COMPLETED")
            .values_list("pk", "job_state", "error_message")
        )
        if bad:
            raise SystemExit(f"requests did not complete: {list(bad)[:5]}")

    def warm_up(self) -> None:
        """Until the queen has heard the ant and one request ran end to end."""
        self.wait_done([self.submit("bench-single")], timeout=60)
        self.wait_done([self.submit("bench-single") for _ in range(CONCURRENCY)], timeout=60)

    @contextlib.contextmanager
    def profiled(self) -> Iterator[None]:
        """Distributed with ``--profile``: py-spy on the queen and the ant meanwhile."""
        if not self.profile or not isinstance(self.cluster, Distributed):
            yield
            return
        recorder = spy.Recorder(Path(self.profile), self.cluster.pids())
        try:
            yield
        finally:
            recorder.stop()


def part_pids(cluster: Any) -> dict[str, int]:
    """The processes whose CPU a run's table splits out: PostgreSQL (the server and its
    backends) and Redis of this run, found by their ports (distributed mode only)."""
    from urllib.parse import urlsplit

    from django.conf import settings

    if not isinstance(cluster, Distributed):
        return {}
    found = {
        "postgres": procstat.listening_on(int(settings.DATABASES["default"].get("PORT") or 5432), "postgres"),
        "redis": procstat.listening_on(urlsplit(settings.REDIS_URL).port or 6379, "redis-server"),
    }
    return {name: pid for name, pid in found.items() if pid}


def parts_cpu(cluster: Any, parts: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each part: queen, ant, the shells the ant ran, PostgreSQL, Redis."""
    out = {"queen": cluster.queen_cpu()}
    ant = cluster.ant_cpu()
    if ant is not None:
        out["ant"] = ant
        out["tasks"] = procstat.reaped_cpu_secs(cluster.pids()["ant"])
    out.update({name: procstat.tree_cpu_secs(pid) for name, pid in parts.items()})
    return out


def work_counts(cluster: Any) -> dict[str, int]:
    """Counts of work done so far, which the machine's load does not change (distributed):
    PostgreSQL's transactions and rows written in this database, and Redis's commands."""
    import redis
    from django.conf import settings
    from django.db import connection

    if not isinstance(cluster, Distributed):
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this driver's own counts, now
        time.sleep(1.5)  # the other backends report theirs when idle, at most once a second
        cursor.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        xacts, rows = cursor.fetchone()
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        commands = int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()
    return {"pg_transactions": int(xacts), "pg_rows_written": int(rows), "redis_commands": commands}


def run_batch(
    world: World, job_type: str, count: int, tasks_per_request: int, timeout: float
) -> dict[str, Any]:
    """Submit ``count`` requests at once, wait for all, and measure."""
    from django.db.models import Max, Min

    from jobs.models import JobExecution, JobRequest, TaskExecution

    cluster = world.cluster
    pids = cluster.pids()
    for pid in set(pids.values()):
        procstat.reset_peak(pid)
    rss0 = {name: procstat.rss_mb(pid) for name, pid in pids.items()}
    cpu0, ant_cpu0, busy0 = cluster.queen_cpu(), cluster.ant_cpu(), procstat.machine_busy_secs()
    parts = part_pids(cluster)
    work0 = work_counts(cluster)
    parts0 = parts_cpu(cluster, parts)
    polls0 = world.polls
    t0 = time.time()
    ids = world.submit_many(job_type, count)
    submit_secs = time.time() - t0
    world.wait_done(ids, timeout)
    cpu, ant_cpu = cluster.queen_cpu() - cpu0, cluster.ant_cpu()
    busy = procstat.machine_busy_secs() - busy0  # everything: queen, ant, tasks, databases, this driver
    parts1 = parts_cpu(cluster, parts)
    polls = world.polls - polls0
    work1 = work_counts(cluster)
    end = JobExecution.objects.filter(job_request_id__in=ids).aggregate(m=Max("ended_at"))["m"]
    wall = end.timestamp() - t0
    tasks = TaskExecution.objects.filter(job_execution__job_request_id__in=ids).count()
    assert tasks == count * tasks_per_request, (tasks, count, tasks_per_request)
    # submit-to-start: request row created -> its first task sent to the ant
    firsts = (
        TaskExecution.objects.filter(job_execution__job_request_id__in=ids)
        .values("job_execution__job_request_id")
        .annotate(s=Min("started_at"))
    )
    created = dict(JobRequest.objects.filter(pk__in=ids).values_list("pk", "created_at"))
    first_sent = min(r["s"] for r in firsts).timestamp() - t0  # ramp-up: nothing runs before it
    lat = [(r["s"] - created[r["job_execution__job_request_id"]]).total_seconds() * 1000 for r in firsts]
    return {
        "requests": count, "tasks": tasks, "wall_s": wall, "submit_s": submit_secs, "first_sent_s": first_sent,
        "tasks_per_s": tasks / wall, "wall_ms_per_task": wall * 1000 * CONCURRENCY / tasks,
        "latency_p50_ms": pct(lat, 0.5), "latency_p95_ms": pct(lat, 0.95),
        "queen_cpu_ms_per_task": cpu * 1000 / tasks, "machine_cpu_ms_per_task": busy * 1000 / tasks,
        "ant_cpu_ms_per_task": None if ant_cpu is None or ant_cpu0 is None else (ant_cpu - ant_cpu0) * 1000 / tasks,
        # machine CPU split by part (distributed): the rest is this driver, the kernel, others
        "cpu_ms_per_task": {name: (parts1[name] - parts0[name]) * 1000 / tasks for name in parts1},
        # the driver's own: a transaction for the submit, one per poll and four for the counting
        "work_per_task": {
            name: (work1[name] - work0[name] - (polls + 5 if name == "pg_transactions" else 0)) / tasks
            for name in work1
        },
        "peak_rss_mb": {name: procstat.peak_rss_mb(pid) for name, pid in pids.items()},
        "rss_growth_mb": {name: procstat.peak_rss_mb(pid) - rss0[name] for name, pid in pids.items()},
    }  # fmt: skip


def run_fan(world: World, count: int, timeout: float) -> dict[str, Any]:
    """W5: one request whose step fans out to ``count`` ``true`` instances, all at once
    (``max_parallel: 0``): tasks/s from the submit to the step's end, as W2 measures them."""
    from django.db.models import Max, Min

    from jobs.models import JobExecution, TaskExecution
    from jobs.services.definitions import definition_upload

    definition_upload(
        org_id=world.org_id, user=world.user, text=FAN.format(items=json.dumps(list(range(count))))
    )
    cluster = world.cluster
    pids = cluster.pids()
    cpu0, busy0 = cluster.queen_cpu(), procstat.machine_busy_secs()
    t0 = time.time()
    request_id = world.submit("bench-fan")
    world.wait_done([request_id], timeout)
    cpu, busy = cluster.queen_cpu() - cpu0, procstat.machine_busy_secs() - busy0
    end = JobExecution.objects.filter(job_request_id=request_id).aggregate(m=Max("ended_at"))["m"]
    wall = end.timestamp() - t0
    rows = TaskExecution.objects.filter(job_execution__job_request_id=request_id).exclude(fan_out_of="")
    tasks = rows.filter(task_state="COMPLETED").count()
    assert tasks == count, (tasks, count)
    first = rows.aggregate(s=Min("started_at"))["s"].timestamp() - t0
    return {
        "requests": 1, "tasks": tasks, "wall_s": wall, "first_sent_s": first, "tasks_per_s": tasks / wall,
        "wall_ms_per_task": wall * 1000 * CONCURRENCY / tasks, "latency_p50_ms": first * 1000,
        "latency_p95_ms": first * 1000, "queen_cpu_ms_per_task": cpu * 1000 / tasks,
        "machine_cpu_ms_per_task": busy * 1000 / tasks,
        "peak_rss_mb": {name: procstat.peak_rss_mb(pid) for name, pid in pids.items()},
    }  # fmt: skip


def run_probe(world: World, count: int, tmp: Path) -> dict[str, Any]:
    """Submit-to-start with an idle ant: one request at a time; the task writes the time it ran."""
    from jobs.models import JobRequest

    lat = []
    for i in range(count):
        out = tmp / f"probe-{i}"
        rid = world.submit("bench-probe", {"Out": str(out)})
        world.wait_done([rid], timeout=30)
        created = JobRequest.objects.values_list("created_at", flat=True).get(pk=rid)
        lat.append((float(out.read_text()) - created.timestamp()) * 1000)
        time.sleep(0.1)  # idle again: the queen blocks on its streams
    return {"requests": count, "tasks": count, "latency_p50_ms": pct(lat, 0.5), "latency_p95_ms": pct(lat, 0.95),
            "latency_max_ms": max(lat)}  # fmt: skip


def run_logs(world: World, lines: int, timeout: float) -> dict[str, Any]:
    from django.db.models import Count, Sum

    from jobs.domain.logs import task_log_text
    from jobs.models import TaskExecution, TaskLogChunk

    cluster = world.cluster
    pids = cluster.pids()
    for pid in set(pids.values()):
        procstat.reset_peak(pid)
    rss0 = {name: procstat.rss_mb(pid) for name, pid in pids.items()}
    cpu0 = cluster.queen_cpu()
    t0 = time.time()
    rid = world.submit("bench-logs", {"Lines": str(lines)})
    world.wait_done([rid], timeout)
    task_id = TaskExecution.objects.values_list("pk", flat=True).get(job_execution__job_request_id=rid)
    deadline = time.monotonic() + timeout
    expected = [str(i) for i in range(1, lines + 1)]
    got: list[str] = []
    while True:
        agg = TaskLogChunk.objects.filter(task_execution_id=task_id).aggregate(
            a=Sum("last_seq"), b=Sum("first_seq"), n=Count("id")
        )
        stored = (agg["a"] or 0) - (agg["b"] or 0) + (agg["n"] or 0)
        if stored >= lines:  # the log writer may still be storing the last batches
            text = task_log_text(task_id)
            got = [line for line in text.split("\n") if not line.startswith("$ ")] if text else []
            if len(got) >= lines:
                break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wall = time.time() - t0
    cpu = cluster.queen_cpu() - cpu0
    complete = got == expected
    return {
        "requests": 1, "tasks": 1, "lines": lines, "lines_stored": len(got), "all_stored_in_order": complete,
        "wall_s": wall, "lines_per_s": lines / wall, "queen_cpu_s": cpu,
        "peak_rss_mb": {name: procstat.peak_rss_mb(pid) for name, pid in pids.items()},
        "rss_growth_mb": {name: procstat.peak_rss_mb(pid) - rss0[name] for name, pid in pids.items()},
    }  # fmt: skip


def run_backlog(world: World, sizes: list[int], picks: int) -> dict[str, Any]:
    """Time and queries of ``Engine.schedule(limit=1)`` (pick the next runnable request and start
    it) with ``sizes`` pending requests in the table, and of the pick query alone."""
    from django.db import connection
    from django.db.models import Q
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from ants.messaging import InProcessTransport
    from ants.protocol import AntRegistration
    from jobs.models import JobDefinition, JobRequest
    from jobs.queen.engine import Engine
    from jobs.queen.resources import ResourceManager

    definition = JobDefinition.objects.get(
        organization_id=world.org_id, job_type="bench-single", is_latest=True
    )
    resources = ResourceManager()
    resources.heard(AntRegistration(ant_id="bench-backlog-ant", max_capacity=1_000_000, methods=["SHELL"]))
    engine = Engine(InProcessTransport(), resources)
    out: dict[str, Any] = {}
    have = 0
    for size in sizes:
        pending = JobRequest.objects.filter(job_state="PENDING").count()
        now = timezone.now()
        rows = [
            JobRequest(organization_id=world.org_id, job_definition=definition, job_type="bench-single",
                       job_version=str(definition.version), scheduled_at=now)
            for _ in range(size - pending)
        ]  # fmt: skip
        JobRequest.objects.bulk_create(rows, batch_size=2000)
        have = JobRequest.objects.filter(job_state="PENDING").count()
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute("ANALYZE")
        times, pick_times, queries = [], [], []
        for _ in range(picks):
            t = time.perf_counter()
            with CaptureQueriesContext(connection) as ctx:
                started = engine.schedule(limit=1)
            times.append((time.perf_counter() - t) * 1000)
            queries.append(len(ctx.captured_queries))
            assert started == 1, "the scheduler started nothing"
            t = time.perf_counter()
            now = timezone.now()
            qs = JobRequest.objects.filter(job_state="PENDING", scheduled_at__lte=now).filter(
                Q(not_before__isnull=True) | Q(not_before__lte=now)
            )
            list(qs.order_by("-job_priority", "id").values_list("pk", flat=True)[:1])
            pick_times.append((time.perf_counter() - t) * 1000)
        sql, params = qs.order_by("-job_priority", "id").values("pk")[:1].query.sql_with_params()
        with connection.cursor() as cur:  # the plan of the query as the ORM sends it (bound parameters)
            pg = connection.vendor == "postgresql"
            cur.execute(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + sql, params)
            plan = " | ".join(str(r[0] if pg else r[-1]) for r in cur.fetchall())
        out[str(size)] = {
            "pending": have, "schedule_ms_p50": statistics.median(times), "schedule_ms_max": max(times),
            "pick_ms_p50": statistics.median(pick_times), "queries": max(queries), "plan": plan[:300],
        }  # fmt: skip
    small, big = out[str(sizes[0])], out[str(sizes[-1])]
    out["ratio"] = big["schedule_ms_p50"] / small["schedule_ms_p50"]
    out["pick_ratio"] = big["pick_ms_p50"] / small["pick_ms_p50"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["standalone", "distributed"], required=True)
    parser.add_argument(
        "--workload", choices=["W1", "W2", "W3", "W4", "W5", "L", "W6", "W7", "W8"], required=True
    )
    parser.add_argument("--sizes", required=True, help="JSON of the workload sizes")
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--profile", help="standalone: a pyinstrument profile of the queen thread (this file); "
                                          "distributed: py-spy profiles of queen and ant (files with this prefix)")  # fmt: skip
    args = parser.parse_args()
    sizes = json.loads(args.sizes)
    tmp = Path(args.tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "formicary_site.settings")
    os.environ.setdefault("FORMICARY_REDIS_PREFIX", f"bench{uuid.uuid4().hex[:8]}")
    import logging

    import django

    django.setup()
    logging.getLogger().setLevel(logging.WARNING)
    world = World(args.mode, tmp, args.profile)
    result: dict[str, Any]
    if args.workload == "W3":
        result = run_backlog(world, [sizes["w3_small"], sizes["w3_big"]], sizes["w3_picks"])
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.workload in ("W6", "W7", "W8"):
        from bench import fleet, history, soak

        run_extra = {"W6": fleet.run, "W7": history.run, "W8": soak.run}[args.workload]
        result = run_extra(world, tmp, sizes)
        result["at"] = datetime.now().isoformat(timespec="seconds")
        print("RESULT " + json.dumps(result), flush=True)
        return
    world.cluster.start()
    try:
        world.warm_up()
        with world.profiled():
            if args.workload == "W1":
                result = run_batch(world, "bench-chain", sizes["w1"], 5, timeout=300)
            elif args.workload == "W2":
                result = run_batch(world, "bench-single", sizes["w2"], 1, timeout=300)
            elif args.workload == "W4":
                result = run_logs(world, sizes["w4"], timeout=600)
            elif args.workload == "W5":
                result = run_fan(world, sizes["w5"], timeout=300)
            else:
                result = run_probe(world, sizes["probe"], tmp)
    finally:
        world.cluster.stop()
    result["at"] = datetime.now().isoformat(timespec="seconds")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
