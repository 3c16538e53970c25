"""The queen's log writer lets lines gather after it drained the stream (a trickle of short
tasks, one echoed command each, costs a few batches a second, not one per task), and reads on
at once while batches come full."""

import time

import pytest

from ants.messaging.base import Delivery
from ants.protocol import LogLine
from jobs.queen import logs
from jobs.queen.logs import READ_COUNT, LogWriter


class Script:
    """A transport handing out prepared batches; the writer stops after the last one."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.read_at: list[float] = []
        self.acked: list[str] = []
        self.writer: LogWriter | None = None

    def claim_stale_logs(self, consumer: str, min_idle_ms: int) -> list[Delivery[LogLine]]:
        return []

    def read_all_logs(self, consumer: str, block_ms: int, count: int = 1000) -> list[Delivery[LogLine]]:
        self.read_at.append(time.monotonic())
        n = self.sizes.pop(0)
        if not self.sizes:
            assert self.writer is not None
            self.writer.stop()
        start = len(self.acked)
        return [Delivery(f"0-{start + i}", LogLine(task_execution_id=1, job_request_id=1, seq=start + i, line="x"))
                for i in range(n)]  # fmt: skip

    def ack_logs(self, delivery_ids: list[str]) -> None:
        self.acked += delivery_ids


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    batches: list[int] = []
    monkeypatch.setattr(
        logs, "store_lines", lambda deliveries: batches.append(len(deliveries)) or len(deliveries)
    )
    return batches


def run(sizes: list[int], linger: float) -> Script:
    script = Script(sizes)
    writer = LogWriter(script, consumer="w", linger_secs=linger)  # type: ignore[arg-type]
    script.writer = writer
    writer.run_forever()
    return script


def test_small_batches_linger(stored: list[int]) -> None:
    script = run([1, 2, 0, 1], linger=0.2)
    gaps = [b - a for a, b in zip(script.read_at, script.read_at[1:], strict=False)]
    assert gaps[0] >= 0.19 and gaps[1] >= 0.19  # after a batch of 1 and one of 2
    assert gaps[2] < 0.15  # an empty read blocked in the transport instead
    assert stored == [1, 2, 1] and len(script.acked) == 4


def test_full_batches_are_read_on_at_once(stored: list[int]) -> None:
    script = run([READ_COUNT, READ_COUNT, 1], linger=5.0)
    assert script.read_at[-1] - script.read_at[0] < 1.0
    assert stored == [READ_COUNT, READ_COUNT, 1]


def test_stop_ends_a_linger(stored: list[int]) -> None:
    start = time.monotonic()
    run([1], linger=30.0)  # the last read stops the writer: it must not sit out the linger
    assert time.monotonic() - start < 5.0
