"""One suite, both transports (in-process and Redis Streams): identical semantics."""

from __future__ import annotations

import threading
import time

import pytest

from ants.messaging.base import LOG_STREAM_TTL_AFTER_END_SECS, RESPONSES_GROUP, TransportClosed
from ants.protocol import AntRegistration, LogLine, TaskRequest, TaskResponse


def req(n: int, action: str = "EXECUTE", attempt: int = 1) -> TaskRequest:
    return TaskRequest(
        task_execution_id=n, job_request_id=100 + n, task_type=f"t{n}", action=action, attempt=attempt
    )


def resp(n: int, status: str = "COMPLETED") -> TaskResponse:
    return TaskResponse(task_execution_id=n, job_request_id=100 + n, status=status)


def log(n: int, seq: int, task: int = 1) -> LogLine:
    return LogLine(task_execution_id=task, job_request_id=5, seq=seq, line=f"line {n}")


# -- task requests ------------------------------------------------------------------------------


def test_tasks_are_read_in_order_and_acked(transport) -> None:
    for n in range(20):
        transport.send_task("a1", req(n))
    got = []
    while True:
        batch = transport.read_tasks("a1", "c1", 0, 7)
        if not batch:
            break
        assert len(batch) <= 7
        got += batch
    assert [d.message.task_execution_id for d in got] == list(range(20))
    for d in got:
        transport.ack_task("a1", d.id)
    assert transport.claim_stale_tasks("a1", "c2", 0) == []


def test_tasks_are_routed_per_ant(transport) -> None:
    transport.send_task("a1", req(1))
    transport.send_task("a2", req(2))
    assert [d.message.task_execution_id for d in transport.read_tasks("a2", "c", 0, 10)] == [2]
    assert [d.message.task_execution_id for d in transport.read_tasks("a1", "c", 0, 10)] == [1]


def test_control_requests_are_read_even_at_full_capacity(transport) -> None:
    transport.send_task("a1", req(1))
    transport.send_task("a1", req(1, action="CANCEL"))
    transport.send_task("a1", req(2, action="PING"))
    batch = transport.read_tasks("a1", "c1", 0, 0)  # full: control only
    assert [(d.message.action, d.message.task_execution_id) for d in batch] == [("CANCEL", 1), ("PING", 2)]
    for d in batch:
        transport.ack_task("a1", d.id)
    batch = transport.read_tasks("a1", "c1", 0, 5)
    assert [(d.message.action, d.message.task_execution_id) for d in batch] == [("EXECUTE", 1)]
    # Control entry ids never get confused with task ids when acking.
    transport.ack_task("a1", batch[0].id)
    assert transport.claim_stale_tasks("a1", "c2", 0) == []


def test_unacked_requests_are_redelivered_to_a_claimer(transport) -> None:
    transport.send_task("a1", req(1))
    transport.send_task("a1", req(2, action="CANCEL"))
    first = transport.read_tasks("a1", "dead", 0, 10)
    assert len(first) == 2
    assert transport.read_tasks("a1", "live", 0, 10) == []  # delivered once per group
    assert transport.claim_stale_tasks("a1", "live", 60_000) == []  # not idle long enough
    time.sleep(0.02)
    claimed = transport.claim_stale_tasks("a1", "live", 10)
    assert sorted((d.message.action, d.id) for d in claimed) == sorted(
        (d.message.action, d.id) for d in first
    )
    for d in claimed:
        transport.ack_task("a1", d.id)
    assert transport.claim_stale_tasks("a1", "other", 0) == []


def test_send_response_and_ack(transport) -> None:
    transport.send_task("a1", req(1))
    (d,) = transport.read_tasks("a1", "c", 0, 1)
    transport.send_response_and_ack("a1", d.id, resp(1))
    assert [x.message.task_execution_id for x in transport.read_responses("q", 0, 10)] == [1]
    assert transport.claim_stale_tasks("a1", "c2", 0) == []


# -- responses ----------------------------------------------------------------------------------


def test_responses_are_shared_by_the_queens_group(backend) -> None:
    t1, t2 = backend.transport, backend.peer()
    for n in range(10):
        t1.send_response(resp(n))
    a = t1.read_responses("queen-1", 0, 4)
    b = t2.read_responses("queen-2", 0, 100)
    ids = [d.message.task_execution_id for d in a + b]
    assert ids == list(range(10))  # each response to exactly one queen, in order
    t1.ack_responses([d.id for d in a])
    t2.ack_responses([d.id for d in b])
    assert t1.claim_stale_responses("queen-3", 0) == []


def test_responses_of_a_dead_queen_are_claimed(transport) -> None:
    transport.send_response(resp(1))
    transport.send_response(resp(2))
    dead = transport.read_responses("dead-queen", 0, 10)
    assert len(dead) == 2
    transport.ack_response(dead[0].id)
    time.sleep(0.02)
    claimed = transport.claim_stale_responses("live-queen", 10)
    assert [d.message.task_execution_id for d in claimed] == [2]
    assert claimed[0].id == dead[1].id
    # Claimed entries are now the live queen's: another claim with a long idle gets nothing.
    assert transport.claim_stale_responses("third", 60_000) == []
    transport.ack_response(claimed[0].id)
    assert transport.claim_stale_responses("third", 0) == []


def test_a_wake_is_acknowledged_with_the_next_send_or_read(backend) -> None:
    """A wake entry is not acknowledged in a round trip of its own before the pass it woke: it
    goes with the queen's next send or read, and leaves the stream then."""
    if backend.kind != "redis":
        pytest.skip("wake entries are Redis stream entries")
    t, r = backend.transport, backend.transport.redis
    key, group = t.key_responses, RESPONSES_GROUP

    def left() -> tuple[int, int]:  # (pending in the queens' group, entries in the stream)
        return r.xpending(key, group)["pending"], r.xlen(key)

    t.wake_queens()
    assert t.read_responses("queen-1", 0, 10) == [] and t.wakes_read == 1
    assert left() == (1, 1)  # read, not yet acknowledged
    t.send_tasks([("a1", req(1))])  # the pass's send carries the ack
    assert left() == (0, 0)
    t.wake_queens()
    t.send_response(resp(7))
    got = t.read_responses("queen-1", 0, 10)
    assert [d.message.task_execution_id for d in got] == [7] and t.wakes_read == 2
    t.ack_responses([d.id for d in got])
    assert left() == (1, 1)  # the wake's ack waits
    assert t.read_responses("queen-1", 0, 10) == []  # the next read carries it
    assert left() == (0, 0)


def test_a_read_a_wake_cut_short_still_acknowledges(backend, monkeypatch) -> None:
    """A wake that comes while a blocking read is being set up skips the read, not the acks that
    were to go ahead of it."""
    if backend.kind != "redis":
        pytest.skip("wake entries are Redis stream entries")
    t, r = backend.transport, backend.transport.redis
    key = t.key_responses
    t.wake_queens()
    assert t.read_responses("queen-1", 0, 10) == []
    assert (r.xpending(key, RESPONSES_GROUP)["pending"], r.xlen(key)) == (1, 1)
    real = t._client_id

    def woken_meanwhile(conn):  # type: ignore[no-untyped-def]
        t.wake()
        return real(conn)

    monkeypatch.setattr(t, "_client_id", woken_meanwhile)
    assert t.read_responses("queen-1", 5000, 10) == []  # the read is skipped
    assert (r.xpending(key, RESPONSES_GROUP)["pending"], r.xlen(key)) == (0, 0)


# -- malformed entries --------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"not json", b'{"version": 99}', b"[]"])
def test_malformed_entries_are_skipped_and_acked(backend, payload) -> None:
    t = backend.transport
    backend.raw_add(t.key_responses, payload)
    t.send_response(resp(1))
    backend.raw_add(t.key_tasks("a1"), payload)
    backend.raw_add(t.key_control("a1"), payload)
    t.send_task("a1", req(2))
    backend.raw_add(t.key_all_logs, payload)
    backend.raw_add(t.key_logs(9), payload)
    t.publish_logs([log(1, 1, task=9)])
    assert [d.message.task_execution_id for d in t.read_responses("q", 0, 10)] == [1]
    assert [d.message.task_execution_id for d in t.read_tasks("a1", "c", 0, 10)] == [2]
    assert [d.message.line for d in t.read_all_logs("w", 0)] == ["line 1"]
    assert [line.line for _, line in t.read_logs(9, "0", 0)] == ["line 1"]
    # The bad entries were acked: nothing of them is left to claim.
    assert [d.message.task_execution_id for d in t.claim_stale_responses("q2", 0)] == [1]
    assert [d.message.task_execution_id for d in t.claim_stale_tasks("a1", "c2", 0)] == [2]
    assert [d.message.line for d in t.claim_stale_logs("w2", 0)] == ["line 1"]


def test_malformed_registration_is_skipped(backend) -> None:
    t = backend.transport
    assert t.read_registrations(0) == []  # sets this reader's cursor
    backend.raw_add(t.key_registrations, b"garbage")
    t.publish_registration(AntRegistration(ant_id="a1"))
    assert [r.ant_id for r in t.read_registrations(0)] == ["a1"]


# -- blocking and wake-ups ----------------------------------------------------------------------


LONG_BLOCK_MS = 120_000  # far past the 60 s the tests wait: a reader still blocked there failed to wake


def _read_in_thread(fn, results: dict) -> threading.Thread:
    def run() -> None:
        results["value"] = fn()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


@pytest.mark.parametrize("kind", ["tasks", "responses", "logs", "all_logs", "registrations"])
def test_blocked_reader_wakes_on_new_entry(backend, kind) -> None:
    """How fast it wakes is the benchmark's business (bench L latency); here: it wakes at all."""
    t, sender = backend.transport, backend.peer()
    readers = {
        "tasks": (lambda: t.read_tasks("a1", "c", LONG_BLOCK_MS, 1), lambda: sender.send_task("a1", req(1))),
        "responses": (
            lambda: t.read_responses("q", LONG_BLOCK_MS, 10),
            lambda: sender.send_response(resp(1)),
        ),
        "logs": (lambda: t.read_logs(1, "0", LONG_BLOCK_MS), lambda: sender.publish_log(log(1, 1))),
        "all_logs": (lambda: t.read_all_logs("w", LONG_BLOCK_MS), lambda: sender.publish_log(log(1, 1))),
        "registrations": (
            lambda: t.read_registrations(LONG_BLOCK_MS),
            lambda: sender.publish_registration(AntRegistration("a1")),
        ),
    }
    read, send = readers[kind]
    if kind == "registrations":
        t.read_registrations(0)
    results: dict = {}
    th = _read_in_thread(read, results)
    time.sleep(0.15)  # let the reader block first (if it has not, the entry is read all the same)
    send()
    th.join(60)
    assert not th.is_alive(), f"the blocked {kind} reader did not wake on a new entry"
    assert len(results["value"]) == 1


def test_wake_interrupts_blocked_reads(transport) -> None:
    results: dict = {}
    th = _read_in_thread(lambda: transport.read_tasks("a1", "c", LONG_BLOCK_MS, 1), results)
    time.sleep(0.15)
    transport.wake()
    th.join(60)
    assert not th.is_alive(), "wake() did not interrupt the blocked read"
    assert results["value"] == []
    # Later reads block normally again: one waits for the next response instead of returning empty.
    later: dict = {}
    th = _read_in_thread(lambda: transport.read_responses("q", LONG_BLOCK_MS, 1), later)
    time.sleep(0.15)
    transport.send_response(resp(1))
    th.join(60)
    assert not th.is_alive() and len(later["value"]) == 1


def test_non_blocking_reads_return_at_once(transport) -> None:
    """A block of 0 means "do not block" here, not Redis's "block for ever"."""
    results: dict = {}

    def reads() -> list:
        return [transport.read_tasks("a1", "c", 0, 5), transport.read_responses("q", 0, 5),
                transport.read_logs(1, "0", 0), transport.read_all_logs("w", 0), transport.read_registrations(0)]  # fmt: skip

    th = _read_in_thread(reads, results)
    th.join(60)  # only against hanging
    assert not th.is_alive(), "a read with block 0 blocked"
    assert results["value"] == [[], [], [], [], []]


def test_close_wakes_readers_and_rejects_calls(backend) -> None:
    t = backend.peer() if backend.kind == "redis" else backend.transport
    results: dict = {}

    def read() -> None:
        try:
            results["value"] = t.read_responses("q", 10_000, 1)
        except TransportClosed as exc:
            results["value"] = exc

    th = threading.Thread(target=read)
    th.start()
    time.sleep(0.15)
    t.close()
    th.join(5)
    assert not th.is_alive()
    with pytest.raises(TransportClosed):
        t.send_response(resp(1))


# -- registrations ------------------------------------------------------------------------------


def test_registrations_fan_out_and_snapshot(backend) -> None:
    t = backend.transport
    queen = backend.peer()
    assert queen.read_registrations(0) == []
    t.publish_registration(AntRegistration(ant_id="a1", current_load=0))
    t.publish_registration(AntRegistration(ant_id="a2", current_load=0))
    t.publish_registration(AntRegistration(ant_id="a1", current_load=3))
    seen = queen.read_registrations(0)
    assert [(r.ant_id, r.current_load) for r in seen] == [("a1", 0), ("a2", 0), ("a1", 3)]
    assert queen.read_registrations(0) == []
    if backend.kind == "redis":
        # Fan-out: a second queen sees the same heartbeats (independent cursor).
        other = backend.peer()
        other.read_registrations(0)
        t.publish_registration(AntRegistration(ant_id="a3"))
        assert [r.ant_id for r in other.read_registrations(0)] == ["a3"]
        assert [r.ant_id for r in queen.read_registrations(0)] == ["a3"]
    snap = queen.ant_registrations()
    assert snap["a1"].current_load == 3 and "a2" in snap


def test_snapshot_drops_stale_and_shutting_down_ants(transport) -> None:
    transport.publish_registration(AntRegistration(ant_id="old", created_at=time.time() - 60))
    transport.publish_registration(AntRegistration(ant_id="live"))
    transport.publish_registration(AntRegistration(ant_id="leaving", shutting_down=True))
    assert set(transport.ant_registrations()) == {"live"}
    assert set(transport.ant_registrations(include_shutting_down=True)) == {"live", "leaving"}
    assert set(transport.ant_registrations(max_age_secs=3600)) == {"live", "old"}


# -- logs ---------------------------------------------------------------------------------------


def test_logs_per_task_and_fan_in(transport) -> None:
    transport.publish_logs([log(n, n, task=1) for n in range(5)] + [log(99, 1, task=2)])
    first = transport.read_logs(1, "0", 0)
    assert [line.seq for _, line in first] == [0, 1, 2, 3, 4]
    transport.publish_logs([log(5, 5, task=1)])
    rest = transport.read_logs(1, first[-1][0], 0)
    assert [line.seq for _, line in rest] == [5]
    assert [line.line for _, line in transport.read_logs(2, "0", 0)] == ["line 99"]
    fan_in = transport.read_all_logs("writer-1", 0, count=100)
    assert [(d.message.task_execution_id, d.message.seq) for d in fan_in] == [(1, n) for n in range(5)] + [
        (2, 1),
        (1, 5),
    ]
    transport.ack_logs([d.id for d in fan_in[:3]])
    time.sleep(0.02)
    assert len(transport.claim_stale_logs("writer-2", 10)) == 4


def test_a_tasks_log_stream_expires_soon_after_its_end(transport) -> None:
    transport.publish_logs([log(1, 1, task=1), log(2, 1, task=2)])
    day = transport.log_ttl_secs(1)
    assert day is not None and day > 3600
    # EXECUTING changes nothing; the end (batched or alone) leaves the stream minutes, not a day
    transport.send_batch([log(3, 2, task=1)], [resp(1, "EXECUTING")])
    assert transport.log_ttl_secs(1) > 3600
    transport.send_batch([log(4, 3, task=1)], [resp(1)])
    transport.send_response(resp(2, "FAILED"))
    for task in (1, 2):
        left = transport.log_ttl_secs(task)
        assert left is not None and 0 < left <= LOG_STREAM_TTL_AFTER_END_SECS
    assert transport.log_ttl_secs(3) is None  # an end without lines makes no stream
    assert [line.seq for _, line in transport.read_logs(1, "0", 0)] == [1, 2, 3]  # still there meanwhile


def test_expired_log_streams_leave_memory(monkeypatch) -> None:
    from ants.messaging import inprocess

    monkeypatch.setattr(inprocess, "LOG_STREAM_TTL_AFTER_END_SECS", 1.0)
    monkeypatch.setattr(inprocess, "SWEEP_SECS", 0.0)
    t = inprocess.InProcessTransport()
    try:
        for task in range(1, 51):
            t.send_batch([log(task, 1, task=task)], [resp(task)])
        held = t.streams_held()
        assert held >= 50  # a stream per task and the shared ones
        time.sleep(1.1)
        t.publish_logs([log(100, 1, task=100)])  # the next line logged sweeps
        assert t.streams_held() <= held - 50 + 1, "the ended tasks' streams are still held"
    finally:
        t.close()


def test_concurrent_senders_lose_nothing(backend) -> None:
    t = backend.transport
    senders = [backend.peer() for _ in range(4)]

    def send(i: int, s) -> None:
        for n in range(50):
            s.send_response(resp(i * 1000 + n))

    threads = [threading.Thread(target=send, args=(i, s)) for i, s in enumerate(senders)]
    for th in threads:
        th.start()
    got: list[int] = []
    deadline = time.monotonic() + 10
    while len(got) < 200 and time.monotonic() < deadline:
        batch = t.read_responses("q", 200, 64)
        got += [d.message.task_execution_id for d in batch]
        t.ack_responses([d.id for d in batch])
    for th in threads:
        th.join()
    assert sorted(got) == sorted(i * 1000 + n for i in range(4) for n in range(50))
    for i in range(4):  # per-sender order is kept
        mine = [x for x in got if x // 1000 == i]
        assert mine == sorted(mine)
