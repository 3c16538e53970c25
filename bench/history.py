"""W7: the read paths and submit-to-start with a large history of finished jobs (PostgreSQL).

First the figures on an empty database (only the bench's own few requests), then ``rows``
finished requests, each with one execution and 5 finished task executions, are generated in
PostgreSQL (``INSERT ... SELECT FROM generate_series``, in batches of 100,000 requests, one
transaction each: the server makes the rows, nothing crosses the wire), ANALYZE, and the same
figures again. The history belongs to the bench's organization (the worst case: every list and
count of the user sees it), spread over the last 365 days, 9 in 10 COMPLETED, the rest FAILED.

"Empty" holds one page of finished requests (200), so a page of the list is as full both
times; ``--rows`` may name several sizes, measured one after the other as the history grows.
Each figure is the p95 of ``samples`` calls from this process through Django's test client
as a logged-in member of the organization (server-side time: rendering and queries, no
network): the requests list API (``GET /api/jobs/requests``, first page), the dashboard
(``GET /``, its counts by state and of the last 24 h), a request page (``GET
/jobs/requests/<id>`` of the same 5-task request both times) and the stats API (``GET
/api/jobs/requests/stats``); and submit-to-start with an idle ant (request row created to its
task sent, from the database), one request at a time. Last, retention deletes the oldest
part of the history (half of it, at most 10,000 requests) (``requests_prune``, in a thread) while submit-to-start is probed again.
"""

import json
import re
import time
from pathlib import Path
from typing import Any

BATCH = 100_000
PRUNED = 10_000  # at most this many pruned at the end (its rate is what is measured)
BASELINE = 200  # finished requests in the "empty" database: one page of the list
TASKS_PER_REQUEST = 5


def _literal(field: Any) -> str | None:
    """A SQL literal for ``field``'s default (None: the column may be left NULL)."""
    from django.db import models

    if field.null:
        return None
    default = field.get_default()
    if isinstance(field, models.JSONField):
        return "'" + json.dumps(default if default is not None else {}).replace("'", "''") + "'::jsonb"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, int | float):
        return str(default)
    if isinstance(default, str):
        return "'" + default.replace("'", "''") + "'"
    return None


def _insert_select(model: Any, given: dict[str, str], source: str) -> str:
    """``INSERT INTO <table> (...) SELECT ... <source>``: ``given`` column expressions, every
    other NOT NULL column its model default as a literal."""
    cols, exprs = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        expr = given.get(field.column)
        if expr is None:
            expr = _literal(field)
        if expr is None:
            continue
        cols.append(field.column)
        exprs.append(expr)
    return f"INSERT INTO {model._meta.db_table} ({', '.join(cols)}) SELECT {', '.join(exprs)} {source}"


def generate(org_id: int, definition_id: int, user_id: int, rows: int) -> dict[str, float]:
    """``rows`` finished requests, their executions and 5 task executions each."""
    from django.db import connection, transaction

    from jobs.domain import finished_counts
    from jobs.models import JobExecution, JobRequest, TaskExecution

    t0 = time.time()
    done = 0
    while done < rows:
        n = min(BATCH, rows - done)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM jobs_jobrequest")
            base = cur.fetchone()[0]
            # g: 1..n; age spread over a year, oldest first (ids grow with time, as in real use)
            when = f"now() - make_interval(secs => (({rows} - {done} - g) * 31536000.0 / {rows}))"
            state = "CASE WHEN g % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END"
            cur.execute(_insert_select(JobRequest, {
                "organization_id": str(org_id), "user_id": str(user_id), "job_definition_id": str(definition_id),
                "job_type": "'bench-chain'", "job_version": "'1'", "job_state": state, "scheduled_at": when,
                "created_at": when, "updated_at": f"{when} + interval '3 seconds'",
            }, f"FROM generate_series(1, {n}) g ORDER BY g"))  # fmt: skip
            cur.execute(_insert_select(JobExecution, {
                "organization_id": "r.organization_id", "job_request_id": "r.id", "job_state": "r.job_state",
                "started_at": "r.created_at", "ended_at": "r.updated_at", "updated_at": "r.updated_at",
            }, f"FROM jobs_jobrequest r WHERE r.id > {base} ORDER BY r.id"))  # fmt: skip
            cur.execute(
                "UPDATE jobs_jobrequest r SET last_execution_id = e.id FROM jobs_jobexecution e "
                f"WHERE e.job_request_id = r.id AND r.id > {base}"
            )
            cur.execute(_insert_select(TaskExecution, {
                "organization_id": "e.organization_id", "job_execution_id": "e.id", "task_type": "'t' || k",
                "method": "'SHELL'", "task_state": "'COMPLETED'", "task_order": "k - 1", "attempt": "1",
                "exit_code": "'0'", "ant_id": "'bench-ant'",
                "started_at": "e.started_at + make_interval(secs => k * 0.5)",
                "ended_at": "e.started_at + make_interval(secs => k * 0.5 + 0.4)", "updated_at": "e.ended_at",
            }, f"FROM jobs_jobexecution e JOIN jobs_jobrequest r ON r.id = e.job_request_id, "
               f"generate_series(1, {TASKS_PER_REQUEST}) k WHERE r.id > {base} ORDER BY e.id, k"))  # fmt: skip
        done += n
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    generated = time.time()
    # the rows were written around jobs/domain/transitions.py: their finished counts are made as
    # the migration makes them for an existing history (what the product would have kept)
    finished_counts.rebuild(org_id)
    return {"generate_s": generated - t0, "count_s": time.time() - generated}


def probe(world: Any) -> float:
    """Submit-to-start of one request with an idle ant, ms (request created -> its task sent)."""
    from jobs.models import JobRequest, TaskExecution

    rid = world.submit("bench-single")
    world.wait_done([rid], timeout=60)
    created = JobRequest.objects.values_list("created_at", flat=True).get(pk=rid)
    sent = TaskExecution.objects.values_list("started_at", flat=True).get(job_execution__job_request_id=rid)
    time.sleep(0.1)  # idle again
    return (sent - created).total_seconds() * 1000


def prune_meanwhile(world: Any, rows: int) -> dict[str, float]:
    """Retention on the oldest part of the history (half of it, at most PRUNED requests: the
    history is spread evenly over 365 days, oldest first, so the age picks how many) in a
    thread, while this thread keeps probing submit-to-start: how fast it deletes, and whether
    the queen waits."""
    import threading
    from datetime import timedelta

    from django.db import connection

    from bench.workload import pct
    from jobs.services.retention import requests_prune

    done: dict[str, float] = {}
    days = 365 * (1 - min(rows // 2, PRUNED) / rows)

    def prune() -> None:
        t = time.time()
        try:
            done["requests"] = requests_prune(older_than=timedelta(days=days)).requests
        finally:
            done["secs"] = time.time() - t
            connection.close()

    worker = threading.Thread(target=prune)
    worker.start()
    lat = []
    while worker.is_alive():
        lat.append(probe(world))
    worker.join()
    return {"older_than_days": days, "requests": done.get("requests", 0), "secs": done["secs"],
            "requests_per_s": done.get("requests", 0) / max(done["secs"], 1e-6), "probes": len(lat),
            "submit_to_start_p50_ms": pct(lat, 0.5), "submit_to_start_p95_ms": pct(lat, 0.95)}  # fmt: skip


def control_org() -> tuple[Any, int]:
    """A second organization in the same database with BASELINE finished requests of its own:
    its user and one of its 5-task requests. Measured call by call in turn with the history's
    organization, it tells what the history costs at the same moment of a shared machine."""
    from bench.workload import CHAIN
    from jobs.models import JobDefinition, JobRequest
    from jobs.services.definitions import definition_upload
    from orgs import services

    user = services.user_ensure(username="bench-control", org_name="bench-control", create=True)
    org_id = user.organization_id
    assert org_id is not None  # user_ensure made it a member
    definition_upload(org_id=org_id, user=user, text=CHAIN)
    definition = JobDefinition.objects.get(organization_id=org_id, job_type="bench-chain",
                                           is_latest=True)  # fmt: skip
    generate(org_id, definition.pk, user.pk, BASELINE)
    page = JobRequest.objects.filter(organization_id=org_id).order_by("-id").values_list("id", flat=True)
    return user, page[0]


def _paths(request_id: int) -> dict[str, str]:
    return {"requests_list": "/api/jobs/requests", "dashboard": "/",
            "request_page": f"/jobs/requests/{request_id}", "stats": "/api/jobs/requests/stats"}  # fmt: skip


def measure(
    world: Any, chain_id: int, samples: int, control: tuple[Any, int] | None = None
) -> dict[str, float]:
    """p50/p95 of each read path (and of the ``control`` organization's, call by call in turn
    with it: ``<path>_control_p50_ms``...), then submit-to-start."""
    from django.test import Client

    from bench.workload import pct

    client = Client()
    client.force_login(world.user)
    other = Client()
    if control is not None:
        other.force_login(control[0])
    paths = _paths(chain_id)
    other_paths = _paths(control[1]) if control is not None else {}
    out: dict[str, float] = {}

    def timed(c: Any, path: str) -> float:
        t = time.perf_counter()
        response = c.get(path)
        took = (time.perf_counter() - t) * 1000
        assert response.status_code == 200, (path, response.status_code)
        return took

    for name, path in paths.items():
        for _ in range(2):  # warm: the first call compiles templates and queries
            timed(client, path)
            if control is not None:
                timed(other, other_paths[name])
        times, other_times = [], []
        for _ in range(samples):
            times.append(timed(client, path))
            if control is not None:
                other_times.append(timed(other, other_paths[name]))
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = pct(times, 0.5), pct(times, 0.95)
        if control is not None:
            out[f"{name}_control_p50_ms"] = pct(other_times, 0.5)
            out[f"{name}_control_p95_ms"] = pct(other_times, 0.95)
    lat = [probe(world) for _ in range(samples)]
    out["submit_to_start_p50_ms"], out["submit_to_start_p95_ms"] = pct(lat, 0.5), pct(lat, 0.95)
    return out


# the scans a plan names (EXPLAIN's text format)
_SCAN_RE = re.compile(
    r"Seq Scan on \w+|Index(?: Only)? Scan(?: Backward)? using \w+|Bitmap Index Scan on \w+"
)


def plans(world: Any, chain_id: int) -> dict[str, list[str]]:
    """The scans of every query on requests, executions and their counts that the read paths
    send (captured from one call each, then EXPLAINed as sent): index ranges or whole tables."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(world.user)
    out: dict[str, list[str]] = {}
    for name, path in (("requests_list", "/api/jobs/requests"), ("dashboard", "/"),
                       ("request_page", f"/jobs/requests/{chain_id}"), ("stats", "/api/jobs/requests/stats")):  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200, path
        scans: set[str] = set()
        for query in queries.captured_queries:
            sql = query["sql"]
            if sql.startswith("SELECT") and any(t in sql for t in ("jobs_jobrequest", "jobs_jobexecution",
                                                                    "jobs_taskexecution", "jobs_finishedcount")):  # fmt: skip
                with connection.cursor() as cur:
                    cur.execute("EXPLAIN " + sql)
                    scans.update(_SCAN_RE.findall("\n".join(row[0] for row in cur.fetchall())))
        out[name] = sorted(scans)
    return out


PATHS = [
    ("submit_to_start", "submit-to-start (idle ant)"),
    ("requests_list", "GET /api/jobs/requests"),
    ("dashboard", "GET / (dashboard counts)"),
    ("request_page", "GET /jobs/requests/<id> (5 tasks)"),
    ("stats", "GET /api/jobs/requests/stats"),
]


def run(world: Any, tmp: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    from django.db import connection

    from jobs.models import JobDefinition

    if connection.vendor != "postgresql":
        raise SystemExit("W7 needs PostgreSQL (distributed mode)")
    steps = sizes["w7_rows"] if isinstance(sizes["w7_rows"], list) else [sizes["w7_rows"]]
    samples = sizes["w7_samples"]
    definition = JobDefinition.objects.get(
        organization_id=world.org_id, job_type="bench-chain", is_latest=True
    )
    world.cluster.start()
    levels: list[dict[str, Any]] = []
    try:
        world.warm_up()
        chain_id = world.submit("bench-chain")
        world.wait_done([chain_id], timeout=60)
        # "empty": one full page of finished requests (the list shows 200 a page), so that only
        # the size of the tables differs between the two measurements, not what a page holds
        generate(world.org_id, definition.pk, world.user.pk, BASELINE)
        empty = measure(world, chain_id, samples)
        control: tuple[Any, int] | None = None
        have = BASELINE
        for rows in sorted(steps):
            gen = generate(world.org_id, definition.pk, world.user.pk, rows - have)
            have = rows
            with connection.cursor() as cur:
                cur.execute("SELECT pg_total_relation_size('jobs_jobrequest') + pg_total_relation_size("
                            "'jobs_jobexecution') + pg_total_relation_size('jobs_taskexecution')")  # fmt: skip
                size_mb = cur.fetchone()[0] / 1024 / 1024
            if control is None:  # its rows the newest: a page of its list is the first rows by id
                control = control_org()
            full = measure(world, chain_id, samples, control)
            scans = plans(world, chain_id)
            ratios = {name: full[f"{name}_p95_ms"] / max(empty[f"{name}_p95_ms"], 1e-6) for name, _ in PATHS}
            # the same moment: against the control organization's calls in turn (read paths only)
            same_moment = {name: full[f"{name}_p95_ms"] / max(full[f"{name}_control_p95_ms"], 1e-6)
                           for name, _ in PATHS if f"{name}_control_p95_ms" in full}  # fmt: skip
            levels.append({"rows": rows, "task_rows": rows * TASKS_PER_REQUEST, "full": full, "ratios": ratios,
                           "control_ratios": same_moment, "generate_s": gen["generate_s"], "count_s": gen["count_s"], "tables_mb": size_mb,
                           "plans": scans})  # fmt: skip
        pruned = prune_meanwhile(world, levels[-1]["rows"])
    finally:
        world.cluster.stop()
    top = levels[-1]
    worst = max(top["ratios"], key=lambda k: top["ratios"][k])
    return {
        "baseline_rows": BASELINE, "samples": samples, "empty": empty, "levels": levels,
        "rows": top["rows"], "ratios": top["ratios"], "prune": pruned,
        "summary": f"{top['rows']} finished requests ({top['task_rows']} tasks); worst p95 ratio "
                   f"x{top['ratios'][worst]:.2f} ({worst})",
    }  # fmt: skip


def table(r: dict[str, Any]) -> str:
    e = r["empty"]
    head = "| path | empty p50 / p95 ms |" + "".join(
        f" {lv['rows']:,} rows p50 / p95 ms | p95 ratio |" for lv in r["levels"]
    )
    rows = [
        f"W7 history: p50 / p95 of {r['samples']} calls each; empty = {r['baseline_rows']} finished requests (one "
        "page); then " + "; ".join(f"{lv['rows']:,} finished requests and {lv['task_rows']:,} task executions "
                                   f"({lv['tables_mb']:.0f} MB with indexes, generated in {lv['generate_s']:.0f} s, "
                                   f"counted in {lv.get('count_s', 0):.1f} s)"
                                   for lv in r["levels"]),
        head,
        "| --- | --- |" + " --- | --- |" * len(r["levels"]),
    ]  # fmt: skip
    for name, label in PATHS:
        cells = "".join(
            f" {lv['full'][f'{name}_p50_ms']:.1f} / {lv['full'][f'{name}_p95_ms']:.1f} | x{lv['ratios'][name]:.2f} |"
            for lv in r["levels"]
        )
        rows.append(f"| {label} | {e[f'{name}_p50_ms']:.1f} / {e[f'{name}_p95_ms']:.1f} |{cells}")
    if any(lv.get("control_ratios") for lv in r["levels"]):
        rows.append(f"Same moment, call by call in turn with an organization of {r['baseline_rows']} finished "
                    "requests in the same database (its p50 / p95 ms, then the history's p95 / its p95):")  # fmt: skip
        rows.append(
            "| path |"
            + "".join(f" control at {lv['rows']:,} p50 / p95 ms | p95 ratio |" for lv in r["levels"])
        )
        rows.append("| --- |" + " --- | --- |" * len(r["levels"]))
        for name, label in PATHS:
            if all(name in lv.get("control_ratios", {}) for lv in r["levels"]):
                cells = "".join(f" {lv['full'][f'{name}_control_p50_ms']:.1f} / {lv['full'][f'{name}_control_p95_ms']:.1f}"
                                f" | x{lv['control_ratios'][name]:.2f} |" for lv in r["levels"])  # fmt: skip
                rows.append(f"| {label} |{cells}")
    for lv in r["levels"]:
        for name, scans in lv.get("plans", {}).items():
            rows.append(f"Plans of {name}'s queries at {lv['rows']:,} rows: " + ", ".join(scans))
    p = r["prune"]
    rows.append(
        f"Retention meanwhile: prune (older than {p['older_than_days']:.0f} days) deleted {p['requests']:,} requests in {p['secs']:.1f} s "
        f"({p['requests_per_s']:.0f}/s, batches of 500); submit-to-start during it p50 / p95 "
        f"{p['submit_to_start_p50_ms']:.1f} / {p['submit_to_start_p95_ms']:.1f} ms over {p['probes']} requests"
    )
    return "\n".join(rows)
