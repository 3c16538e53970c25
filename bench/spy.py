"""Sampling profiles of the distributed queen and ant processes with py-spy.

``Recorder`` attaches ``py-spy record`` to running processes (no restart, no code in them) for
the measured part of a workload and writes, per process, the raw collapsed stacks
(``<prefix>-<name>.txt``: one ``frame;frame;... count`` line per stack, what flamegraph tools
read) and then one short summary of all of them (``<prefix>-top.txt``).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

RATE_HZ = 200
TOP = 25
# "func (path/to/file.py:12)" -> "func (file.py)": lines of one function count together
_FRAME_RE = re.compile(r"^(.*?) \((?:.*/)?([^/:()]+):\d+\)$")


class Recorder:
    """``py-spy record`` on each of ``pids`` until ``stop()``."""

    def __init__(self, prefix: Path, pids: dict[str, int]) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise SystemExit("--profile in distributed mode needs py-spy (pip install py-spy)")
        self.prefix = prefix
        self.outputs = {name: Path(f"{prefix}-{name}.txt") for name in pids}
        self.procs = [
            subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(RATE_HZ),
                    "--format",
                    "raw",
                    "--output",
                    str(self.outputs[name]),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for name, pid in pids.items()
        ]

    def stop(self) -> Path:
        """End the recordings (py-spy writes its file on SIGINT); returns the summary's path."""
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        errors = []
        for proc in self.procs:
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode not in (0, -signal.SIGINT) and err:
                errors.append(err.decode(errors="replace").strip()[-500:])
        summary = Path(f"{self.prefix}-top.txt")
        parts = [summarize(name, path) for name, path in self.outputs.items() if path.exists()]
        summary.write_text("\n\n".join(parts + [f"py-spy: {e}" for e in errors]) + "\n")
        return summary


def _frame(text: str) -> str:
    match = _FRAME_RE.match(text)
    return f"{match.group(1)} ({match.group(2)})" if match else text


def summarize(name: str, path: Path, top: int = TOP) -> str:
    """Where the samples of one raw profile went: by thread entry point, then the functions
    with the most samples inclusive (anywhere on the stack) and self (the innermost frame)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    entry: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.strip() or not count.isdigit():
            continue  # py-spy writes an empty stack for a sample with every thread idle
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        # a thread's own code starts below threading's bootstrap frames
        entry[next((f for f in frames if not f.endswith("(threading.py)")), frames[-1])] += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"== {name}: {total} active samples at {RATE_HZ} Hz ({total / RATE_HZ:.2f} s)"]
    if not total:
        return out[0]
    for title, counter in (("by thread entry", entry), ("inclusive", inclusive), ("self", own)):
        out.append(f"-- {title}")
        out += [f"{n / total * 100:5.1f}% {n:6d}  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(out)
