"""The queen's log writer lets lines gather after it drained the stream (a trickle of short
tasks, one echoed command each, costs a few batches a second, not one per task), and reads on
at once while batches come full. A fake clock records the lingers instead of sleeping them, so the
tests check the order of reads and lingers, not how long anything took."""

import threading
from types import SimpleNamespace

import pytest

from ants.messaging.base import Delivery
from ants.protocol import LogLine
from jobs.domain import logs
from jobs.domain.logs import READ_COUNT, LogWriter


class Script:
    """A transport handing out prepared batches; the writer stops after the last one."""

    def __init__(self, sizes: list[int], steps: list[str]) -> None:
        self.sizes = sizes
        self.steps = steps
        self.acked: list[str] = []
        self.first_acked = threading.Event()
        self.writer: LogWriter | None = None

    def claim_stale_logs(self, consumer: str, min_idle_ms: int) -> list[Delivery[LogLine]]:
        return []

    def read_all_logs(self, consumer: str, block_ms: int, count: int = 1000) -> list[Delivery[LogLine]]:
        n = self.sizes.pop(0)
        self.steps.append(f"read {n}")
        if not self.sizes:
            assert self.writer is not None
            self.writer.stop()
        start = len(self.acked)
        return [Delivery(f"0-{start + i}", LogLine(task_execution_id=1, job_request_id=1, seq=start + i, line="x"))
                for i in range(n)]  # fmt: skip

    def ack_logs(self, delivery_ids: list[str]) -> None:
        self.acked += delivery_ids
        self.first_acked.set()


class FakeClockEvent(threading.Event):
    """The writer's stop event, whose timed waits (the lingers) are recorded, not slept."""

    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps

    def wait(self, timeout: float | None = None) -> bool:
        self.steps.append(f"linger {timeout}")
        return self.is_set()


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    batches: list[int] = []
    monkeypatch.setattr(
        logs, "store_lines", lambda deliveries: batches.append(len(deliveries)) or len(deliveries)
    )
    return batches


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the writer did, in order: its reads and its lingers (on the fake clock)."""
    done: list[str] = []
    monkeypatch.setattr(logs, "threading", SimpleNamespace(Event=lambda: FakeClockEvent(done)))
    return done


def run(sizes: list[int], linger: float, steps: list[str]) -> Script:
    script = Script(sizes, steps)
    writer = LogWriter(script, consumer="w", linger_secs=linger)  # type: ignore[arg-type]
    script.writer = writer
    writer.run_forever()
    return script


def test_small_batches_linger(stored: list[int], steps: list[str]) -> None:
    script = run([1, 2, 0, 1], linger=0.2, steps=steps)
    # after a batch of 1 and one of 2 it lingers; an empty read blocked in the transport instead
    assert steps == ["read 1", "linger 0.2", "read 2", "linger 0.2", "read 0", "read 1", "linger 0.2"]
    assert stored == [1, 2, 1] and len(script.acked) == 4


def test_full_batches_are_read_on_at_once(stored: list[int], steps: list[str]) -> None:
    run([READ_COUNT, READ_COUNT, 1], linger=5.0, steps=steps)
    assert steps == [f"read {READ_COUNT}", f"read {READ_COUNT}", "read 1", "linger 5.0"]
    assert stored == [READ_COUNT, READ_COUNT, 1]


def test_stop_ends_a_linger(stored: list[int]) -> None:
    steps: list[str] = []
    script = Script([1, 1], steps)  # a real clock: the writer lingers ten minutes after the first batch
    writer = LogWriter(script, consumer="w", linger_secs=600)  # type: ignore[arg-type]
    script.writer = writer
    thread = threading.Thread(target=writer.run_forever, daemon=True)
    thread.start()
    assert script.first_acked.wait(60)
    writer.stop()
    thread.join(60)  # only against hanging: a linger that stop() cannot end lasts 600 s
    assert not thread.is_alive(), "stop() did not end the linger"
    assert steps == ["read 1"] and stored == [1]
