"""W8 soak: single-task ``true`` requests at a steady rate for a while; RSS of every process.

Not in CI. The rate is ``w8_rate`` requests/s, or (0) half of what a burst of 200 single-task
requests measured just before (half the capacity). Requests go in every 0.1 s (the bulk
submit, as many as the rate owes). The RSS of the queen, the ant (in standalone both are this
process) and this driver is sampled every 5 s; growth = the last sample minus the sample at the
end of the warm-up (the first fifth of the run, at least 30 s when the run is long enough). At
the end every request must have COMPLETED, each task on its first attempt.
"""

import time
from pathlib import Path
from typing import Any

SAMPLE_SECS = 5.0


def run(world: Any, tmp: Path, sizes: dict[str, Any]) -> dict[str, Any]:
    import os

    from bench import procstat
    from bench.workload import run_batch
    from jobs.models import JobRequest, TaskExecution

    cluster = world.cluster
    cluster.start()
    try:
        world.warm_up()
        rate = (
            float(sizes["w8_rate"])
            or run_batch(world, "bench-single", 200, 1, timeout=300)["tasks_per_s"] / 2
        )
        by_pid: dict[int, list[str]] = {}
        for name, pid in {**cluster.pids(), "driver": os.getpid()}.items():
            by_pid.setdefault(pid, []).append(name)
        pids = {" + ".join(names): pid for pid, names in by_pid.items()}  # standalone: one process
        secs = float(sizes["w8_minutes"]) * 60
        warm = min(max(secs / 5, min(30.0, secs / 2)), secs / 2)
        samples: list[dict[str, float]] = []
        ids: list[int] = []
        backlog: list[int] = []  # at each sample: submitted, not finished (flat: the rate is kept up)

        def unfinished(ids: list[int]) -> int:
            if not ids:
                return 0
            rows = JobRequest.objects.filter(organization_id=world.org_id, pk__gte=ids[0], pk__lte=ids[-1])
            return rows.exclude(job_state__in=["COMPLETED", "FAILED", "CANCELLED"]).count()

        t0 = time.monotonic()
        owed, last, next_sample = 0.0, t0, t0
        while (now := time.monotonic()) - t0 < secs:
            owed += (now - last) * rate
            last = now
            if owed >= 1:
                ids += world.submit_many("bench-single", int(owed))
                owed -= int(owed)
            if now >= next_sample:
                samples.append({"t": now - t0, **{name: procstat.rss_mb(pid) for name, pid in pids.items()}})
                backlog.append(unfinished(ids))
                next_sample += SAMPLE_SECS
            time.sleep(0.1)
        world.wait_done(ids, timeout=600)  # raises unless every one COMPLETED
        samples.append(
            {"t": time.monotonic() - t0, **{name: procstat.rss_mb(pid) for name, pid in pids.items()}}
        )
        # by id range (the bench's organization submits nothing else): no query naming every id
        mine = {"organization_id": world.org_id, "pk__gte": ids[0], "pk__lte": ids[-1]}
        retried = TaskExecution.objects.filter(
            job_execution__job_request__in=JobRequest.objects.filter(**mine), attempt__gt=1
        ).count()
        not_done = JobRequest.objects.filter(**mine).exclude(job_state="COMPLETED").count()
    finally:
        cluster.stop()
    base = next(s for s in samples if s["t"] >= warm)
    growth = {name: samples[-1][name] - base[name] for name in pids}
    return {
        "minutes": sizes["w8_minutes"], "rate": rate, "requests": len(ids), "not_completed": not_done,
        "retried_tasks": retried, "rss_growth_mb": growth, "warm_up_s": warm,
        "rss_mb": {name: [round(s[name], 1) for s in samples] for name in pids},
        "backlog": backlog, "backlog_max": max(backlog, default=0),
        "summary": f"{len(ids)} requests at {rate:.0f}/s; RSS growth after warm-up "
                   + ", ".join(f"{k} {v:+.1f} MB" for k, v in growth.items()),
    }  # fmt: skip


def table(r: dict[str, Any], mode: str) -> str:
    rows = [
        f"W8 soak ({mode}): {r['minutes']} min at {r['rate']:.0f} requests/s, {r['requests']} requests; "
        f"not completed {r['not_completed']}, tasks run more than once {r['retried_tasks']}; submitted and not "
        f"finished at a sample (every {SAMPLE_SECS:.0f} s): at most {r.get('backlog_max', 0)}, at the end of the "
        f"submitting {(r.get('backlog') or [0])[-1]}",
        "| process | RSS after warm-up MB | RSS at the end MB | growth MB |",
        "| --- | --- | --- | --- |",
    ]
    for name, series in r["rss_mb"].items():
        rows.append(f"| {name} | {series[-1] - r['rss_growth_mb'][name]:.1f} | {series[-1]:.1f} | "
                    f"{r['rss_growth_mb'][name]:+.1f} |")  # fmt: skip
    return "\n".join(rows)
