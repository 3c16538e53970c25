"""The benchmark suite works: ``python -m bench --smoke`` runs every workload at tiny sizes and
writes a sane report. No timing is asserted (CI machines vary); docs/performance.md has the
measured figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_smoke_report(tmp_path):  # type: ignore[no-untyped-def]
    distributed = bool(
        os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL", "").startswith("postgres")
    )
    modes = ["standalone", "distributed"] if distributed else ["standalone"]
    out = tmp_path / "report.json"
    # distributed mode uses the servers scripts/test started (a database per workload is created on them)
    cmd = [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--modes", *modes, "--use-env"]
    env = {**os.environ, "FORMICARY_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["smoke"] and report["floor"]["spawn"]["ms_per_task"] > 0
    for mode in modes:
        runs = report[mode]
        assert set(runs) == {"W1", "W2", "W3", "W4", "L"}
        for w in ("W1", "W2"):
            r = runs[w]
            assert r["tasks"] == r["requests"] * (5 if w == "W1" else 1)
            assert r["tasks_per_s"] > 0 and r["latency_p50_ms"] >= 0 and r["queen_cpu_ms_per_task"] >= 0
            assert r["peak_rss_mb"]["queen"] > 0 and r["peak_rss_mb"]["ant"] > 0
            assert "overhead_ms_per_task" in r and r["ratio_to_floor"] > 0
        w3 = runs["W3"]
        sizes = [k for k in w3 if k.isdigit()]
        assert len(sizes) == 2 and all(w3[k]["queries"] > 0 for k in sizes) and w3["ratio"] > 0
        w4 = runs["W4"]
        assert w4["all_stored_in_order"], w4  # every line stored once, in order
        assert runs["L"]["latency_p50_ms"] > 0
    assert "| W1 |" in report["table"] and "| W4 |" in report["table"]
    if distributed:  # the Celery baseline ran on the same Redis, and each row has its ratio to it
        for w in ("W1", "W2"):
            celery = report["celery"][w]
            assert celery["tasks"] == report["distributed"][w]["tasks"] and celery["tasks_per_s"] > 0
            assert report["distributed"][w]["ratio_to_celery"] > 0
        assert "| W1 | celery |" in report["table"]


@pytest.mark.timeout(300)
def test_smoke_scale_and_history(tmp_path):  # type: ignore[no-untyped-def]
    """W6 (a simulated fleet) and W7 (a generated history) at tiny sizes: they run and report."""
    if not (os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL", "").startswith("postgres")):
        pytest.skip("W6 and W7 need Redis and PostgreSQL (distributed mode)")
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--modes", "distributed", "--use-env",
           "--workloads", "W6", "W7"]  # fmt: skip
    env = {**os.environ, "FORMICARY_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(out.read_text())
    w6 = report["distributed"]["W6"]
    for fleet in w6["fleets"].values():
        # every task was answered by a simulated ant, and the queen used more than one of them
        assert fleet["answered"] >= w6["tasks"] and fleet["ants_used"] > 1
        assert fleet["queen_cpu_ms_per_task"] > 0 and fleet["idle_queen_cpu_share"] >= 0
    w7 = report["distributed"]["W7"]
    assert w7["levels"][-1]["rows"] == w7["rows"] and set(w7["ratios"]) >= {"requests_list", "dashboard"}
    assert w7["levels"][-1]["plans"]["stats"]  # the scans of the stats API's queries, EXPLAINed
    assert "W6 scale" in report["extra_tables"] and "W7 history" in report["extra_tables"]
