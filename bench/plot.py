"""Small SVG line charts of W6 and W7 reports for docs/performance.md (no plotting library).

``python -m bench.plot W6-REPORT.json W7-REPORT.json OUT-DIR`` writes ``w6-scale.svg`` (tasks/s
and queen CPU ms/task against ants) and ``w7-history.svg`` (p95 of each read path against
finished requests). Either report may be ``-`` to skip it. The x axes are logarithmic.
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

W, H, PAD = 560, 340, 90
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def chart(title: str, xlabel: str, xs: list[float], series: dict[str, list[float]], ylabel: str) -> str:
    lx = [math.log10(x) for x in xs]
    x0, x1 = min(lx), max(lx) if max(lx) > min(lx) else min(lx) + 1
    top = max(max(v) for v in series.values()) * 1.15 or 1

    def px(x: float) -> float:
        return PAD + (math.log10(x) - x0) / (x1 - x0) * (W - 2 * PAD)

    def py(y: float) -> float:
        return H - PAD + -y / top * (H - 2 * PAD)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="black"/>',
           f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="black"/>',
           f'<text x="{W / 2}" y="{H - 14}" text-anchor="middle">{xlabel}</text>',
           f'<text x="14" y="{H / 2}" text-anchor="middle" transform="rotate(-90 14 {H / 2})">{ylabel}</text>']  # fmt: skip
    for x in xs:
        out.append(f'<text x="{px(x):.0f}" y="{H - PAD + 14}" text-anchor="middle">{x:,.0f}</text>')
    for i in range(5):
        y = top * i / 4
        out.append(f'<text x="{PAD - 4}" y="{py(y) + 4:.0f}" text-anchor="end">{y:.3g}</text>')
    for n, (name, ys) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
            for x, y in zip(xs, ys, strict=True)
        ]
        out.append(f'<text x="{PAD + 8}" y="{PAD - 18 + 12 * n}" fill="{colour}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def w6_chart(r: dict[str, Any]) -> str:
    fleets = [
        f for f in r["fleets"].values() if not f.get("stuck")
    ]  # a stalled fleet has no per-task figures
    xs = [f["ants"] for f in fleets]
    per_task = {"queen CPU ms/task": [f["queen_cpu_ms_per_task"] for f in fleets],
                "dispatch p50 ms / 10": [f["dispatch_p50_ms"] / 10 for f in fleets],
                "tasks/s / 100": [f["tasks_per_s"] / 100 for f in fleets],
                "idle queen CPU %": [f["idle_queen_cpu_share"] * 100 for f in fleets]}  # fmt: skip
    return chart("W6: the queen against simulated ants", "ants (log scale)", xs, per_task, "value (scaled)")


def w7_chart(r: dict[str, Any]) -> str:
    from bench.history import PATHS

    levels = r["levels"]
    xs = [r["baseline_rows"]] + [lv["rows"] for lv in levels]
    series = {label.split(" (")[0]: [r["empty"][f"{name}_p95_ms"]] + [lv["full"][f"{name}_p95_ms"] for lv in levels]
              for name, label in PATHS}  # fmt: skip
    return chart("W7: p95 against finished requests", "finished requests (log scale)", xs, series, "p95 ms")


def main() -> None:
    w6, w7, out = sys.argv[1:4]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if w6 != "-":
        (folder / "w6-scale.svg").write_text(w6_chart(json.loads(Path(w6).read_text())["distributed"]["W6"]))
    if w7 != "-":
        (folder / "w7-history.svg").write_text(
            w7_chart(json.loads(Path(w7).read_text())["distributed"]["W7"])
        )


if __name__ == "__main__":
    main()
