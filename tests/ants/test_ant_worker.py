"""The ant worker end to end over both transports, with a fake queen in the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ants.config import AntConfig
from ants.executors.base import ExecutionResult
from ants.protocol import TaskRequest, TaskResponse
from ants.worker import AntWorker

ANT = "ant-1"


def shell(n: int, script: list[str] | str, attempt: int = 1, **kw) -> TaskRequest:
    return TaskRequest(
        task_execution_id=n,
        job_request_id=1000 + n,
        task_type=f"task{n}",
        attempt=attempt,
        method=kw.pop("method", "SHELL"),
        ant_id=ANT,
        spec={"script": script},
        **kw,
    )


class Queen:
    """Sends requests and collects responses like the queen's response reader would."""

    def __init__(self, transport) -> None:
        self.t = transport
        self.responses: list[TaskResponse] = []

    def send(self, req: TaskRequest, ant_id: str = ANT) -> None:
        self.t.send_task(ant_id, req)

    def poll(self, block_ms: int = 50) -> None:
        batch = self.t.read_responses("queen-1", block_ms, 100)
        self.responses += [d.message for d in batch]
        self.t.ack_responses([d.id for d in batch])

    def finals(self) -> dict[tuple[int, int], TaskResponse]:
        return {r.key: r for r in self.responses if r.status != "EXECUTING" and r.action == "EXECUTE"}

    def wait_for(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out; responses so far: {self.responses}"
            self.poll()

    def wait_finals(self, n: int, timeout: float = 10.0) -> dict[tuple[int, int], TaskResponse]:
        self.wait_for(lambda: len(self.finals()) >= n, timeout)
        return self.finals()

    def statuses(self, n: int) -> list[str]:
        return [r.status for r in self.responses if r.task_execution_id == n and r.action == "EXECUTE"]


class Ants:
    """Starts workers on threads and always stops them."""

    def __init__(self, backend, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.running: list[tuple[AntWorker, threading.Thread]] = []

    def config(self, **kw) -> AntConfig:
        kw.setdefault("ant_id", ANT)
        kw.setdefault("heartbeat_secs", 0.2)
        kw.setdefault("work_root", self.tmp_path / "work")
        return AntConfig(**kw)

    def worker(self, **kw) -> AntWorker:
        return AntWorker(self.config(**kw), self.backend.peer(), block_ms=500)

    def start(self, worker: AntWorker | None = None, **kw) -> AntWorker:
        worker = worker or self.worker(**kw)
        th = threading.Thread(target=worker.run_forever, daemon=True)
        th.start()
        self.running.append((worker, th))
        return worker

    def stop_all(self) -> None:
        for worker, th in self.running:
            worker.cancel_all()
            worker.stop()
            th.join(10)


@pytest.fixture
def ants(backend, tmp_path) -> Iterator[Ants]:
    a = Ants(backend, tmp_path)
    yield a
    a.stop_all()


@pytest.fixture
def queen(backend) -> Queen:
    return Queen(backend.transport)


def test_task_runs_and_reports(ants, queen, backend) -> None:
    ants.start()
    queen.send(shell(1, ["echo hello", 'echo "##formicary:context OUT=42"', "echo bye"]))
    final = queen.wait_finals(1)[(1, 1)]
    # its EXECUTING goes out unless the task ended first (then only the end does)
    assert queen.statuses(1) in (["EXECUTING", "COMPLETED"], ["COMPLETED"])
    assert final.exit_code == "0" and final.ant_id == ANT and final.task_type == "task1"
    assert final.task_context == {"OUT": "42"}
    assert final.stdout[-1] == "bye"
    assert final.started_at is not None and final.ended_at >= final.started_at
    # Logs were all published before the final response, in order.
    lines = backend.transport.read_logs(1, "0", 0)
    assert [ll.seq for _, ll in lines] == list(range(1, len(lines) + 1))
    assert [ll.line for _, ll in lines if ll.stream == "stdout"] == [
        "hello",
        "##formicary:context OUT=42",
        "bye",
    ]
    fan_in = backend.transport.read_all_logs("writer", 0)
    assert len(fan_in) == len(lines)


def test_failure_and_unsupported_method(ants, queen) -> None:
    ants.start(methods=["SHELL"])
    queen.send(shell(1, ["exit 5"]))
    queen.send(shell(2, ["x"], method="HTTP_GET"))
    finals = queen.wait_finals(2)
    assert finals[(1, 1)].status == "FAILED" and finals[(1, 1)].exit_code == "5"
    assert finals[(1, 1)].failed_command == "exit 5"
    assert finals[(2, 1)].status == "FAILED" and finals[(2, 1)].error_code == "ERR_UNSUPPORTED_METHOD"


def test_capacity_is_never_exceeded(ants, queen) -> None:
    worker = ants.start(concurrency=2)
    for n in range(5):
        queen.send(shell(n, ["sleep 0.3"]))
    finals = queen.wait_finals(5)
    assert all(r.status == "COMPLETED" for r in finals.values())
    assert worker.peak_load == 2
    # No instant has more than 2 tasks running (from the ant's own timings).
    events = sorted(
        [(r.started_at, 1) for r in finals.values()] + [(r.ended_at, -1) for r in finals.values()]
    )
    load = peak = 0
    for _, delta in events:
        load += delta
        peak = max(peak, load)
    assert peak <= 2  # how soon freed slots are refilled is throughput: bench W1/W2 measure it


def test_cancel_running_task(ants, queen) -> None:
    ants.start()
    queen.send(shell(1, ["sleep 30"]))
    queen.wait_for(lambda: "EXECUTING" in queen.statuses(1))
    queen.send(TaskRequest(task_execution_id=1, job_request_id=1001, task_type="task1", action="CANCEL"))
    final = queen.wait_finals(1)[(1, 1)]
    assert final.status == "CANCELLED"  # not COMPLETED after the 30 s sleep


def test_cancel_reaches_a_full_ant_and_queued_task_is_never_run(ants, queen, tmp_path) -> None:
    ants.start(concurrency=1)
    marker = tmp_path / "ran"
    queen.send(shell(1, ["sleep 30"]))
    queen.wait_for(lambda: "EXECUTING" in queen.statuses(1))
    queen.send(shell(2, [f"touch {marker}"]))
    # The ant is full: task 2 stays unread, yet both cancels get through.
    queen.send(TaskRequest(task_execution_id=2, job_request_id=1002, task_type="task2", action="CANCEL"))
    time.sleep(0.3)
    queen.send(TaskRequest(task_execution_id=1, job_request_id=1001, task_type="task1", action="CANCEL"))
    finals = queen.wait_finals(2)
    assert finals[(1, 1)].status == "CANCELLED"
    assert finals[(2, 1)].status == "CANCELLED"
    assert queen.statuses(2) == ["CANCELLED"]
    assert not marker.exists()


def test_ping_and_heartbeats(ants, queen, backend) -> None:
    worker = ants.start(concurrency=3, tags=["gpu"])
    queen.send(TaskRequest(task_execution_id=0, job_request_id=0, task_type="", action="PING"))
    queen.wait_for(lambda: any(r.action == "PING" for r in queen.responses))
    pong = next(r for r in queen.responses if r.action == "PING")
    assert pong.status == "COMPLETED" and pong.exit_message == "PONG"
    queen.send(shell(1, ["sleep 1"]))
    deadline = time.monotonic() + 5
    while True:
        regs = backend.transport.ant_registrations()
        if ANT in regs and regs[ANT].current_load == 1:
            break
        assert time.monotonic() < deadline, regs
        time.sleep(0.05)
    reg = regs[ANT]
    assert reg.max_capacity == 3 and reg.tags == ["gpu"] and "SHELL" in reg.methods
    assert reg.allocations == {"1001": {"task1": "EXECUTING"}}
    assert reg.ant_started_at == worker.started_at
    queen.wait_finals(1)


def test_duplicate_execute_is_ignored(ants, queen) -> None:
    worker = ants.start(concurrency=2)
    req = shell(1, ["sleep 0.4; echo once"])
    queen.send(req)
    queen.wait_for(lambda: "EXECUTING" in queen.statuses(1))
    queen.send(req)
    queen.wait_finals(1)
    time.sleep(0.3)
    queen.poll()
    assert queen.statuses(1) == ["EXECUTING", "COMPLETED"]
    assert worker.total_executed == 1
    # A retry (next attempt) of the same task execution is a new task.
    queen.send(shell(1, ["echo again"], attempt=2))
    assert queen.wait_finals(2)[(1, 2)].stdout == ["again"]
    # A late duplicate of a finished attempt gets the same result again, without re-running.
    queen.send(req)
    queen.wait_for(lambda: queen.statuses(1).count("COMPLETED") >= 3)
    time.sleep(0.1)  # the counter moves just after the response is sent
    assert worker.total_executed == 2


def test_stop_finishes_in_flight_work(ants, queen, backend) -> None:
    worker = ants.start(concurrency=2)
    queen.send(shell(1, ["sleep 0.5", "echo finished"]))
    queen.wait_for(lambda: "EXECUTING" in queen.statuses(1))
    worker.stop()
    queen.send(shell(2, ["echo should-not-run"]))
    _, th = ants.running[0]
    th.join(10)
    assert not th.is_alive()
    queen.poll()
    final = queen.finals()[(1, 1)]
    assert final.status == "COMPLETED" and final.stdout == ["finished"]
    assert queen.statuses(2) == []  # left queued for another run of this ant
    regs = backend.transport.ant_registrations(include_shutting_down=True)
    assert regs[ANT].shutting_down and regs[ANT].current_load == 0
    assert ANT not in backend.transport.ant_registrations()
    # The queued request is still there for the next incarnation.
    ants.start()
    assert queen.wait_finals(2)[(2, 1)].stdout == ["should-not-run"]


def test_shutdown_grace_cancels_and_reports_retryable_failure(ants, queen) -> None:
    worker = ants.start(shutdown_grace_secs=0.2)
    queen.send(shell(1, ["sleep 30"]))
    queen.wait_for(lambda: "EXECUTING" in queen.statuses(1))
    worker.stop()
    final = queen.wait_finals(1)[(1, 1)]
    assert final.status == "FAILED" and final.error_code == "ERR_ANT_SHUTDOWN"


def test_unacked_request_is_redelivered_after_a_crash(ants, queen, backend) -> None:
    queen.send(shell(1, ["echo recovered"]))
    # The first incarnation read the request and died before answering.
    crashed = backend.peer()
    assert len(crashed.read_tasks(ANT, ANT, 0, 10)) == 1
    ants.start()
    final = queen.wait_finals(1)[(1, 1)]
    assert final.status == "COMPLETED" and final.stdout == ["recovered"]


def test_workdirs_and_hooks(ants, queen, tmp_path) -> None:
    seen: list[tuple[str, Path]] = []
    worker = ants.worker()

    def before(req: TaskRequest, workdir: Path) -> None:
        seen.append(("before", workdir))
        (workdir / "input.txt").write_text("from-hook")

    def after(req: TaskRequest, workdir: Path, result: ExecutionResult) -> None:
        seen.append(("after", workdir))
        result.artifacts.append({"name": "out.txt", "size": (workdir / "out.txt").stat().st_size})

    worker.before_execute, worker.after_execute = before, after
    ants.start(worker)
    queen.send(shell(7, ["cat input.txt", "echo data > out.txt"], attempt=3))
    final = queen.wait_finals(1)[(7, 3)]
    assert final.stdout == ["from-hook"]
    assert final.artifacts == [{"name": "out.txt", "size": 5}]
    assert [s[0] for s in seen] == ["before", "after"]
    assert seen[0][1] == tmp_path / "work" / "7-3"
    assert not seen[0][1].exists()  # removed afterwards


def test_emptied_workdirs_are_reused_and_full_ones_set_aside(ants, queen, tmp_path, monkeypatch) -> None:
    moves: list[tuple[str, str]] = []
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:  # type: ignore[override]
        moves.append((self.name, Path(target).name))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    ants.start()
    queen.send(shell(11, ["true"]))
    queen.wait_finals(1)
    queen.send(shell(12, ["pwd; mkdir -p a/b && echo x > a/b/f.txt"]))
    final = queen.wait_finals(2)[(12, 1)]
    work = tmp_path / "work"
    assert final.stdout == [str((work / "12-1").resolve())]
    # 11-1 was left empty: kept as a spare and renamed to be 12-1; 12-1 was full: set aside
    spare = moves[0][1]
    assert moves[0][0] == "11-1" and spare.startswith(".formicary-spare-")
    assert moves[1] == (spare, "12-1")
    assert moves[2][0] == "12-1" and moves[2][1].startswith("12-1-")
    assert not (work / "11-1").exists() and not (work / "12-1").exists()
    deadline = time.monotonic() + 5
    while any(p.name.startswith("12-1") for p in work.rglob("*")):  # the background thread deletes it
        assert time.monotonic() < deadline, list(work.rglob("*"))
        time.sleep(0.05)
    ants.stop_all()
    assert not list(work.glob(".formicary-spare-*"))  # spares go when the ant stops


def test_keep_workdirs(ants, queen, tmp_path) -> None:
    ants.start(keep_workdirs=True)
    queen.send(shell(8, ["echo kept > f.txt"]))
    queen.wait_finals(1)
    assert (tmp_path / "work" / "8-1" / "f.txt").read_text() == "kept\n"


def test_logs_stream_while_running(ants, queen, backend, tmp_path) -> None:
    ants.start()
    gate = tmp_path / "gate"  # the task prints "late" only once the test saw "early"
    queen.send(shell(1, [f"echo early; while [ ! -e {gate} ]; do sleep 0.05; done; echo late"]))
    deadline = time.monotonic() + 60  # only against hanging: a buffered "early" never arrives
    lines: list[str] = []
    after = "0"
    while "early" not in lines:
        assert time.monotonic() < deadline, "first line not published while the task runs"
        for entry_id, ll in backend.transport.read_logs(1, after, 100):
            after = entry_id
            lines.append(ll.line)
    assert "late" not in lines and (1, 1) not in queen.finals()
    gate.touch()
    assert queen.wait_finals(1)[(1, 1)].status == "COMPLETED"
