"""Batched messaging: the queen's ``send_tasks`` / ``ack_responses``, the ant's ``send_batch``
(lines, answers, the ack and the read of the next request in one round trip), and the worker
using it: a short task costs one round trip, a full ant takes its next task in it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ants.config import AntConfig
from ants.messaging.base import Delivery, Transport
from ants.messaging.inprocess import InProcessTransport
from ants.protocol import LogLine, TaskRequest, TaskResponse
from ants.worker import TRASH_DIR, AntWorker

ANT = "ant-b"


def req(n: int, action: str = "EXECUTE", script: list[str] | None = None) -> TaskRequest:
    return TaskRequest(task_execution_id=n, job_request_id=100 + n, task_type=f"t{n}", action=action,
                       method="SHELL", ant_id=ANT, spec={"script": script or ["true"]})  # fmt: skip


def answer(n: int, status: str = "COMPLETED") -> TaskResponse:
    return TaskResponse(task_execution_id=n, job_request_id=100 + n, attempt=1, ant_id=ANT, task_type=f"t{n}",
                        status=status)  # fmt: skip


def line(n: int, seq: int) -> LogLine:
    return LogLine(task_execution_id=n, job_request_id=100 + n, seq=seq, line=f"line {seq}")


class DefaultBatching(InProcessTransport):
    """The interface's default (one call per message) implementations over the in-process store."""

    send_tasks = Transport.send_tasks
    send_batch = Transport.send_batch
    ack_responses = Transport.ack_responses


@pytest.fixture(params=["native", "default"])
def t(request: pytest.FixtureRequest, backend) -> Transport:  # type: ignore[no-untyped-def]
    """Each backend's own batching, and the interface's defaults over the same kind of store."""
    if request.param == "native":
        return backend.transport
    if backend.kind == "inprocess":
        transport: Transport = DefaultBatching()
        request.addfinalizer(transport.close)
        return transport
    from ants.messaging.redis_streams import RedisStreamsTransport

    class DefaultRedis(RedisStreamsTransport):
        send_tasks = Transport.send_tasks
        send_batch = Transport.send_batch
        ack_responses = Transport.ack_responses

    transport = DefaultRedis(request.getfixturevalue("redis_url"), prefix=backend.transport.prefix)
    request.addfinalizer(transport.close)
    return transport


def test_send_tasks_keeps_order_and_routes_control(t: Transport) -> None:
    t.send_tasks([(ANT, req(1)), (ANT, req(2, action="CANCEL")), (ANT, req(3)), ("other", req(4))])
    got = t.read_tasks(ANT, "c", 0, 10)
    assert [(d.message.task_execution_id, d.id.startswith("ctl/")) for d in got] == [(2, True), (1, False),
                                                                                     (3, False)]  # fmt: skip
    assert [d.message.task_execution_id for d in t.read_tasks("other", "c", 0, 10)] == [4]
    t.send_tasks([])  # nothing to send is fine


def test_ack_responses_acks_all(t: Transport) -> None:
    for n in (1, 2, 3):
        t.send_response(answer(n))
    got = t.read_responses("q", 0, 10)
    t.ack_responses([d.id for d in got])
    assert t.claim_stale_responses("q2", 0) == []


def test_send_batch_sends_in_order_acks_and_reads_the_next_request(t: Transport) -> None:
    t.send_tasks([(ANT, req(1)), (ANT, req(2)), (ANT, req(3))])
    (first,) = t.read_tasks(ANT, "c", 0, 1)
    t.send_task(ANT, req(9, action="PING"))
    taken = t.send_batch(
        [line(1, 1), line(1, 2)], [answer(1, "EXECUTING"), answer(1)], ack=(ANT, first.id), read=(ANT, "c", 1)
    )
    assert [(d.message.task_execution_id, d.message.action) for d in taken] in (
        [(2, "EXECUTE")],
        [(9, "PING"), (2, "EXECUTE")],  # the default read may hand over control requests too
    )
    assert [(r.message.task_execution_id, r.message.status) for r in t.read_responses("q", 0, 10)] == [
        (1, "EXECUTING"), (1, "COMPLETED")]  # fmt: skip
    assert [ll.line for _, ll in t.read_logs(1, "0", 0)] == ["line 1", "line 2"]
    assert [d.message.seq for d in t.read_all_logs("w", 0)] == [1, 2]
    # the acked request is done; the one read in the batch is pending for this consumer
    pending = t.claim_stale_tasks(ANT, "c2", 0)
    assert 1 not in [d.message.task_execution_id for d in pending]
    assert 2 in [d.message.task_execution_id for d in pending]
    rest = t.read_tasks(ANT, "c", 0, 10)
    assert [d.message.task_execution_id for d in rest if d.message.action == "EXECUTE"] == [3]


def test_send_batch_without_read_or_ack(t: Transport) -> None:
    assert t.send_batch([line(5, 1)]) == []
    assert t.send_batch(responses=[answer(5, "EXECUTING")]) == []
    assert t.send_batch() == []
    assert [d.message.status for d in t.read_responses("q", 0, 10)] == ["EXECUTING"]
    assert [ll.line for _, ll in t.read_logs(5, "0", 0)] == ["line 1"]


def test_send_batch_read_with_nothing_waiting(t: Transport) -> None:
    assert t.send_batch(responses=[answer(6)], read=(ANT, "c", 1)) == []


# -- the worker ----------------------------------------------------------------------------------


class Counting(InProcessTransport):
    """Counts the calls an ant makes (each is one round trip over Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}
        self.taken = 0
        self._count_lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._count_lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def send_response(self, resp: TaskResponse) -> None:
        self._count("send_response")
        super().send_response(resp)

    def publish_logs(self, lines: list[LogLine]) -> None:
        self._count("publish_logs")
        super().publish_logs(lines)

    def send_batch(self, lines=(), responses=(), ack=None, read=None) -> list[Delivery[TaskRequest]]:  # type: ignore[no-untyped-def]
        self._count("send_batch")
        taken = super().send_batch(lines, responses, ack, read)
        with self._count_lock:
            self.taken += len(taken)
        return taken

    def read_tasks(
        self, ant_id: str, consumer: str, block_ms: int, count: int
    ) -> list[Delivery[TaskRequest]]:
        got = super().read_tasks(ant_id, consumer, block_ms, count)
        if got:
            self._count("read_tasks")
        return got


def run_worker(transport: Transport, tmp_path: Path, concurrency: int) -> tuple[AntWorker, threading.Thread]:
    config = AntConfig(ant_id=ANT, concurrency=concurrency, heartbeat_secs=60, work_root=tmp_path / "work")
    worker = AntWorker(config, transport, block_ms=200)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    return worker, thread


def collect(transport: Transport, n: int, timeout: float = 20.0) -> list[TaskResponse]:
    out: list[TaskResponse] = []
    deadline = time.monotonic() + timeout
    while sum(r.status != "EXECUTING" for r in out) < n:
        assert time.monotonic() < deadline, out
        batch = transport.read_responses("q", 100, 100)
        out += [d.message for d in batch]
        transport.ack_responses([d.id for d in batch])
    return out


def test_a_full_ant_takes_its_next_task_in_the_answers_round_trip(tmp_path: Path) -> None:
    transport = Counting()
    n = 12
    transport.send_tasks([(ANT, req(i)) for i in range(1, n + 1)])
    worker, thread = run_worker(transport, tmp_path, concurrency=1)
    try:
        answers = collect(transport, n)
    finally:
        worker.stop()
        thread.join(10)
        transport.close()
    statuses = [[r.status for r in answers if r.task_execution_id == i] for i in range(1, n + 1)]
    # every task: its final answer once, after its EXECUTING when that went out before the end
    assert all(s in (["EXECUTING", "COMPLETED"], ["COMPLETED"]) for s in statuses), statuses
    # a task that ended before its EXECUTING was flushed sends only its end (the queen would
    # write EXECUTING and undo it in the next statement)
    assert ["COMPLETED"] in statuses, statuses
    # the EXECUTING answers and "$ true" lines rode along: nothing was sent on its own
    assert "send_response" not in transport.calls and "publish_logs" not in transport.calls
    assert transport.calls["send_batch"] <= n + 5  # one per task (+ a few timer flushes)
    # after the first, tasks came in the finishing task's round trip, not through the reader
    assert transport.taken >= n - 3, transport.calls
    assert transport.calls.get("read_tasks", 0) <= 3, transport.calls


def test_finished_working_directories_are_deleted_in_the_background(tmp_path: Path) -> None:
    transport = InProcessTransport()
    transport.send_tasks([(ANT, req(i, script=["echo x > f.txt"])) for i in (1, 2, 3)])
    worker, thread = run_worker(transport, tmp_path, concurrency=2)
    work = tmp_path / "work"
    try:
        collect(transport, 3)
        assert not any((work / f"{i}-1").exists() for i in (1, 2, 3))  # gone before the answer
        deadline = time.monotonic() + 5
        while any((work / TRASH_DIR).iterdir()):
            assert time.monotonic() < deadline, list((work / TRASH_DIR).iterdir())
            time.sleep(0.02)
    finally:
        worker.stop()
        thread.join(10)
        transport.close()
