"""``python -m bench.pairs``: two variants of the code or its settings, measured in alternating
pairs of ``python -m bench --modes distributed --workloads W1 W2 --no-celery``.

On a shared machine the spread between two runs of the same code minutes apart is larger than
the differences worth measuring, so each pair runs A and B one right after the other (A first
in odd pairs, B first in even ones) and what counts is the median over the pairs of each pair's
own ratio. The load average before each run is recorded with it.

    python -m bench.pairs --pairs 3 --a-env FORMICARY_FAST_SQL_OFF= --b-env FORMICARY_FAST_SQL_OFF=compiled
    python -m bench.pairs --a-tree /tmp/main --b-tree . --pairs 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("tasks_per_s", "overhead_ms_per_task", "queen_cpu_ms_per_task")


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(p.split("=", 1) for p in pairs)


def run_once(tree: Path, env: dict[str, str]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, "-m", "bench", "--modes", "distributed", "--workloads", "W1", "W2", "--no-celery",
               "--out", out.name]  # fmt: skip
        subprocess.run(cmd, cwd=tree, env={**os.environ, **env}, check=True, capture_output=True, timeout=900)
        report = json.loads(Path(out.name).read_text())["distributed"]
    return {"load": load, **{w: {m: report[w][m] for m in METRICS} for w in ("W1", "W2")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--a-tree", type=Path, default=ROOT, help="source tree of A (default: this one)")
    parser.add_argument("--b-tree", type=Path, default=ROOT, help="source tree of B (default: this one)")
    parser.add_argument("--a-env", nargs="*", default=[], help="NAME=VALUE set for A's runs")
    parser.add_argument("--b-env", nargs="*", default=[], help="NAME=VALUE set for B's runs")
    parser.add_argument("--out", type=Path, help="the runs as JSON")
    args = parser.parse_args()
    variants = {"A": (args.a_tree, _env(args.a_env)), "B": (args.b_tree, _env(args.b_env))}
    runs: list[dict[str, Any]] = []
    for i in range(args.pairs):
        order = "AB" if i % 2 == 0 else "BA"
        pair = {v: run_once(*variants[v]) for v in order}
        runs.append(pair)
        for v in "AB":
            r = pair[v]
            print(f"pair {i + 1} {v}: load {r['load']:.2f}  "
                  + "  ".join(f"{w} {r[w]['tasks_per_s']:.1f}/s q{r[w]['queen_cpu_ms_per_task']:.2f}"
                              for w in ("W1", "W2")), flush=True)  # fmt: skip
    for w in ("W1", "W2"):
        a = [p["A"][w] for p in runs]
        b = [p["B"][w] for p in runs]
        ratio = [y["tasks_per_s"] / x["tasks_per_s"] for x, y in zip(a, b, strict=True)]
        cpu = [y["queen_cpu_ms_per_task"] / x["queen_cpu_ms_per_task"] for x, y in zip(a, b, strict=True)]
        print(f"{w}: tasks/s median A {statistics.median(x['tasks_per_s'] for x in a):.1f} "
              f"B {statistics.median(y['tasks_per_s'] for y in b):.1f}; B/A tasks/s median {statistics.median(ratio):.3f} "
              f"{[round(r, 3) for r in ratio]}; queen CPU/task A {statistics.median(x['queen_cpu_ms_per_task'] for x in a):.2f} "
              f"B {statistics.median(y['queen_cpu_ms_per_task'] for y in b):.2f} ms, B/A median {statistics.median(cpu):.3f}")  # fmt: skip
    print("load:", [round(p[v]["load"], 2) for p in runs for v in "AB"])
    if args.out:
        args.out.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
