"""In-process transport for the standalone mode: the Redis Streams semantics in memory.

Every stream is an ordered dict of ``(ms, seq)`` ids to JSON text (messages are serialised
exactly as on Redis, so both transports run the same validation and the same tests). One
``threading.Condition`` guards everything; writers ``notify_all`` so blocked readers wake at
once instead of polling.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ants.messaging.base import (
    CONTROL_BATCH,
    CONTROL_ID_PREFIX,
    DEFAULT_ANT_TTL_SECS,
    LOG_STREAM_MAXLEN,
    LOG_STREAM_TTL_AFTER_END_SECS,
    LOG_STREAM_TTL_SECS,
    REGISTRATIONS_MAXLEN,
    SHARED_LOG_MAXLEN,
    Delivery,
    Transport,
    TransportClosed,
    decode_entry,
    ended_tasks,
)
from ants.protocol import ACTION_EXECUTE, AntRegistration, LogLine, TaskRequest, TaskResponse

EntryId = tuple[int, int]
SWEEP_SECS = 10.0  # how often expired per-task log streams are dropped


def format_id(entry_id: EntryId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


def parse_id(text: str) -> EntryId:
    try:
        if "-" in text:
            ms, seq = text.split("-", 1)
            return (int(ms), int(seq))
        return (int(text), 0)
    except ValueError as exc:
        raise ValueError(f"invalid stream id {text!r}") from exc


class _Stream:
    """One stream with (at most) one consumer group, like the Redis streams we use."""

    def __init__(self, maxlen: int | None = None) -> None:
        self.entries: OrderedDict[EntryId, str] = OrderedDict()
        self.maxlen = maxlen
        self.last: EntryId = (0, 0)
        self.delivered: EntryId = (0, 0)  # the group's last-delivered id
        self.pending: dict[EntryId, list[Any]] = {}  # id -> [consumer, delivered_at_monotonic]
        self.expires_at: float | None = None

    def add(self, payload: str) -> EntryId:
        ms = int(time.time() * 1000)
        entry_id = (ms, 0) if ms > self.last[0] else (self.last[0], self.last[1] + 1)
        self.last = entry_id
        self.entries[entry_id] = payload
        if self.maxlen is not None:
            while len(self.entries) > self.maxlen:
                old, _ = self.entries.popitem(last=False)
                self.pending.pop(old, None)
        return entry_id

    def read_group(self, consumer: str, count: int) -> list[tuple[EntryId, str]]:
        out: list[tuple[EntryId, str]] = []
        if count <= 0:
            return out
        now = time.monotonic()
        for entry_id, payload in self.entries.items():
            if entry_id <= self.delivered:
                continue
            out.append((entry_id, payload))
            self.pending[entry_id] = [consumer, now]
            if len(out) >= count:
                break
        if out:
            self.delivered = out[-1][0]
        return out

    def ack(self, entry_id: EntryId) -> None:
        # An acked entry is done (single group), so it is deleted like XACK + XDEL.
        self.pending.pop(entry_id, None)
        self.entries.pop(entry_id, None)

    def claim(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[EntryId, str]]:
        now = time.monotonic()
        out: list[tuple[EntryId, str]] = []
        for entry_id in sorted(self.pending):
            owner = self.pending[entry_id]
            if (now - owner[1]) * 1000 < min_idle_ms:
                continue
            payload = self.entries.get(entry_id)
            if payload is None:  # trimmed meanwhile: drop it, as XAUTOCLAIM does
                del self.pending[entry_id]
                continue
            owner[0], owner[1] = consumer, now
            out.append((entry_id, payload))
            if len(out) >= count:
                break
        return out

    def read_after(self, after: EntryId, count: int) -> list[tuple[EntryId, str]]:
        out = []
        for entry_id, payload in self.entries.items():
            if entry_id > after:
                out.append((entry_id, payload))
                if len(out) >= count:
                    break
        return out


class InProcessTransport(Transport):
    """Thread-safe in-memory transport with pending/ack/claim, for one process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._streams: dict[str, _Stream] = {}
        self._next_sweep = 0.0
        self._ants: dict[str, str] = {}
        self._reg_cursor: EntryId | None = None
        self._wake_gen = 0
        self._closed = False

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def key_tasks(ant_id: str) -> str:
        return f"ant:{ant_id}:tasks"

    @staticmethod
    def key_control(ant_id: str) -> str:
        return f"ant:{ant_id}:control"

    key_responses = "responses"
    key_registrations = "registrations"
    key_all_logs = "logs"

    @staticmethod
    def key_logs(task_execution_id: int) -> str:
        return f"logs:{task_execution_id}"

    def _stream(self, key: str, maxlen: int | None = None) -> _Stream:
        stream = self._streams.get(key)
        expired = (
            stream is not None and stream.expires_at is not None and stream.expires_at < time.monotonic()
        )
        if stream is None or expired:  # like Redis EXPIRE on per-task log streams
            stream = self._streams[key] = _Stream(maxlen)
        return stream

    def raw_add(self, key: str, payload: str | bytes) -> str:
        """Append raw text to a stream (tests use it to inject malformed entries)."""
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        with self._cond:
            entry_id = self._stream(key).add(text)
            self._cond.notify_all()
        return format_id(entry_id)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("transport is closed")

    def _blocking(self, block_ms: int, attempt: Callable[[], list[Any] | None]) -> list[Any]:
        """Run ``attempt`` under the lock until it returns a non-empty list, a wake, or timeout.

        ``attempt`` returns None when it found nothing usable (so we keep waiting).
        """
        deadline = time.monotonic() + block_ms / 1000 if block_ms > 0 else None
        with self._cond:
            gen = self._wake_gen
            while True:
                self._check_open()
                result = attempt()
                if result:
                    return result
                if deadline is None:
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._wake_gen != gen:
                    return []
                self._cond.wait(remaining)
                if self._wake_gen != gen:
                    self._check_open()
                    return []

    def _decode_group(
        self, cls: type, stream: _Stream, key: str, items: list[tuple[EntryId, str]], id_prefix: str = ""
    ) -> list[Delivery[Any]]:
        out = []
        for entry_id, payload in items:
            msg = decode_entry(cls, payload, f"{key} {format_id(entry_id)}")
            if msg is None:
                stream.ack(entry_id)  # malformed: acked and skipped
            else:
                out.append(Delivery(id_prefix + format_id(entry_id), msg))
        return out

    def _task_entry(self, ant_id: str, delivery_id: str) -> tuple[_Stream, EntryId]:
        if delivery_id.startswith(CONTROL_ID_PREFIX):
            return self._stream(self.key_control(ant_id)), parse_id(delivery_id[len(CONTROL_ID_PREFIX) :])
        return self._stream(self.key_tasks(ant_id)), parse_id(delivery_id)

    # -- tasks ---------------------------------------------------------------------------------
    def _request_key(self, ant_id: str, req: TaskRequest) -> str:
        return self.key_tasks(ant_id) if req.action == ACTION_EXECUTE else self.key_control(ant_id)

    def send_task(self, ant_id: str, req: TaskRequest) -> None:
        payload = req.to_json()
        with self._cond:
            self._check_open()
            self._stream(self._request_key(ant_id, req)).add(payload)
            self._cond.notify_all()

    def send_tasks(self, tasks: Iterable[tuple[str, TaskRequest]]) -> None:
        entries = [(self._request_key(ant_id, req), req.to_json()) for ant_id, req in tasks]
        with self._cond:
            self._check_open()
            for key, payload in entries:
                self._stream(key).add(payload)
            self._cond.notify_all()

    def read_tasks(
        self, ant_id: str, consumer: str, block_ms: int, count: int
    ) -> list[Delivery[TaskRequest]]:
        ctl_key, task_key = self.key_control(ant_id), self.key_tasks(ant_id)

        def attempt() -> list[Delivery[TaskRequest]]:
            ctl = self._stream(ctl_key)
            out = self._decode_group(
                TaskRequest, ctl, ctl_key, ctl.read_group(consumer, CONTROL_BATCH), CONTROL_ID_PREFIX
            )
            if count > 0:
                tasks = self._stream(task_key)
                out += self._decode_group(TaskRequest, tasks, task_key, tasks.read_group(consumer, count))
            return out

        return self._blocking(block_ms, attempt)

    def ack_task(self, ant_id: str, delivery_id: str) -> None:
        with self._cond:
            stream, entry_id = self._task_entry(ant_id, delivery_id)
            stream.ack(entry_id)

    def claim_stale_tasks(self, ant_id: str, consumer: str, min_idle_ms: int) -> list[Delivery[TaskRequest]]:
        with self._cond:
            self._check_open()
            out: list[Delivery[TaskRequest]] = []
            for key, prefix in ((self.key_control(ant_id), CONTROL_ID_PREFIX), (self.key_tasks(ant_id), "")):
                stream = self._stream(key)
                items = stream.claim(consumer, min_idle_ms, 1000)
                out += self._decode_group(TaskRequest, stream, key, items, prefix)
            return out

    # -- responses -----------------------------------------------------------------------------
    def send_response(self, resp: TaskResponse) -> None:
        payload = resp.to_json()
        with self._cond:
            self._check_open()
            self._stream(self.key_responses).add(payload)
            self._ended([resp])
            self._cond.notify_all()

    def _ended(self, responses: Sequence[TaskResponse]) -> None:
        """The log streams of the tasks that ended expire soon; the caller holds the lock."""
        expires = time.monotonic() + LOG_STREAM_TTL_AFTER_END_SECS
        for task_execution_id in ended_tasks(responses):
            stream = self._streams.get(self.key_logs(task_execution_id))
            if stream is not None:
                stream.expires_at = expires

    def send_batch(
        self,
        lines: Sequence[LogLine] = (),
        responses: Sequence[TaskResponse] = (),
        ack: tuple[str, str] | None = None,
        read: tuple[str, str, int] | None = None,
    ) -> list[Delivery[TaskRequest]]:
        log_payloads = [(line.task_execution_id, line.to_json()) for line in lines]
        payloads = [resp.to_json() for resp in responses]
        with self._cond:  # one event for every reader
            self._check_open()
            self._add_logs(log_payloads)
            out = self._stream(self.key_responses)
            for payload in payloads:
                out.add(payload)
            self._ended(responses)
            if ack is not None:
                stream, entry_id = self._task_entry(*ack)
                stream.ack(entry_id)
            self._cond.notify_all()
            if read is None:
                return []
            # Only the tasks stream: control requests stay with read_tasks (the ant's reader).
            ant_id, consumer, count = read
            key = self.key_tasks(ant_id)
            tasks = self._stream(key)
            return self._decode_group(TaskRequest, tasks, key, tasks.read_group(consumer, max(count, 1)))

    def read_responses(self, group_consumer: str, block_ms: int, count: int) -> list[Delivery[TaskResponse]]:
        key = self.key_responses

        def attempt() -> list[Delivery[TaskResponse]]:
            stream = self._stream(key)
            return self._decode_group(TaskResponse, stream, key, stream.read_group(group_consumer, count))

        return self._blocking(block_ms, attempt)

    def ack_response(self, delivery_id: str) -> None:
        with self._cond:
            self._stream(self.key_responses).ack(parse_id(delivery_id))

    def ack_responses(self, delivery_ids: Iterable[str]) -> None:
        with self._cond:
            stream = self._stream(self.key_responses)
            for delivery_id in delivery_ids:
                stream.ack(parse_id(delivery_id))

    def claim_stale_responses(self, consumer: str, min_idle_ms: int) -> list[Delivery[TaskResponse]]:
        with self._cond:
            self._check_open()
            stream = self._stream(self.key_responses)
            items = stream.claim(consumer, min_idle_ms, 1000)
            return self._decode_group(TaskResponse, stream, self.key_responses, items)

    # -- registrations -------------------------------------------------------------------------
    def publish_registration(self, reg: AntRegistration) -> None:
        payload = reg.to_json()
        with self._cond:
            self._check_open()
            self._stream(self.key_registrations, REGISTRATIONS_MAXLEN).add(payload)
            self._ants[reg.ant_id] = payload
            self._cond.notify_all()

    def read_registrations(self, block_ms: int) -> list[AntRegistration]:
        key = self.key_registrations
        with self._cond:
            if self._reg_cursor is None:
                self._reg_cursor = self._stream(key, REGISTRATIONS_MAXLEN).last

        def attempt() -> list[AntRegistration] | None:
            stream = self._stream(key, REGISTRATIONS_MAXLEN)
            assert self._reg_cursor is not None
            items = stream.read_after(self._reg_cursor, 1000)
            if items:
                self._reg_cursor = items[-1][0]
            out = [decode_entry(AntRegistration, p, f"{key} {format_id(i)}") for i, p in items]
            return [r for r in out if r is not None]

        return self._blocking(block_ms, attempt)

    def ant_registrations(
        self, max_age_secs: float = DEFAULT_ANT_TTL_SECS, include_shutting_down: bool = False
    ) -> dict[str, AntRegistration]:
        with self._cond:
            snapshot = dict(self._ants)
        out: dict[str, AntRegistration] = {}
        now = time.time()
        for ant_id, payload in snapshot.items():
            reg = decode_entry(AntRegistration, payload, f"ants {ant_id}")
            if reg is None or now - reg.created_at > max_age_secs:
                continue
            if reg.shutting_down and not include_shutting_down:
                continue
            out[ant_id] = reg
        return out

    # -- logs ----------------------------------------------------------------------------------
    def publish_logs(self, lines: list[LogLine]) -> None:
        if not lines:
            return
        payloads = [(line.task_execution_id, line.to_json()) for line in lines]
        with self._cond:
            self._check_open()
            self._add_logs(payloads)
            self._cond.notify_all()

    def _add_logs(self, payloads: list[tuple[int, str]]) -> None:
        """Append (task execution id, line JSON) pairs; the caller holds the lock."""
        if not payloads:
            return
        now = time.monotonic()
        if now >= self._next_sweep:
            # what Redis's expiry does by itself: streams nobody reads again go
            self._next_sweep = now + SWEEP_SECS
            for key in [
                k for k, st in self._streams.items() if st.expires_at is not None and st.expires_at < now
            ]:
                del self._streams[key]
        expires = now + LOG_STREAM_TTL_SECS
        shared = self._stream(self.key_all_logs, SHARED_LOG_MAXLEN)
        for task_execution_id, payload in payloads:
            stream = self._stream(self.key_logs(task_execution_id), LOG_STREAM_MAXLEN)
            stream.add(payload)
            stream.expires_at = expires
            shared.add(payload)

    def log_ttl_secs(self, task_execution_id: int) -> float | None:
        with self._cond:
            stream = self._streams.get(self.key_logs(task_execution_id))
            if stream is None or stream.expires_at is None:
                return None
            return stream.expires_at - time.monotonic()

    def streams_held(self) -> int:
        """How many streams this process keeps in memory (expired log streams go within
        ``SWEEP_SECS`` of the next line logged)."""
        with self._cond:
            return len(self._streams)

    def read_logs(self, task_execution_id: int, after_id: str, block_ms: int) -> list[tuple[str, LogLine]]:
        key = self.key_logs(task_execution_id)
        after = parse_id(after_id or "0")

        def attempt() -> list[tuple[str, LogLine]] | None:
            nonlocal after
            items = self._stream(key, LOG_STREAM_MAXLEN).read_after(after, 1000)
            if items:
                after = items[-1][0]
            out = []
            for entry_id, payload in items:
                line = decode_entry(LogLine, payload, f"{key} {format_id(entry_id)}")
                if line is not None:
                    out.append((format_id(entry_id), line))
            return out

        return self._blocking(block_ms, attempt)

    def read_all_logs(self, consumer: str, block_ms: int, count: int = 1000) -> list[Delivery[LogLine]]:
        key = self.key_all_logs

        def attempt() -> list[Delivery[LogLine]]:
            stream = self._stream(key, SHARED_LOG_MAXLEN)
            return self._decode_group(LogLine, stream, key, stream.read_group(consumer, count))

        return self._blocking(block_ms, attempt)

    def ack_logs(self, delivery_ids: Iterable[str]) -> None:
        with self._cond:
            stream = self._stream(self.key_all_logs, SHARED_LOG_MAXLEN)
            for delivery_id in delivery_ids:
                stream.ack(parse_id(delivery_id))

    def claim_stale_logs(self, consumer: str, min_idle_ms: int) -> list[Delivery[LogLine]]:
        with self._cond:
            self._check_open()
            stream = self._stream(self.key_all_logs, SHARED_LOG_MAXLEN)
            return self._decode_group(
                LogLine, stream, self.key_all_logs, stream.claim(consumer, min_idle_ms, 1000)
            )

    # -- lifecycle -----------------------------------------------------------------------------
    def wake(self) -> None:
        with self._cond:
            self._wake_gen += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._wake_gen += 1
            self._cond.notify_all()
