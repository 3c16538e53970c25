"""Redis Streams transport (see ``ants.messaging.base`` for stream names and semantics).

Speed notes: what belongs together goes in one pipeline (an ant's log lines, its answers, the
ack of the request the last one answers and the read of its next request; a queen's batch of
requests or of acks), and readers block in XREADGROUP/XREAD instead of polling. ``wake()``
interrupts blocked reads with CLIENT UNBLOCK: blocking reads run on a connection whose client id
we know, so shutdown and "a slot became free" need no polling either.

Every entry has a single field ``m`` holding the message JSON. With message encryption on (a
``MessageSealer``, see ``ants.messaging.sealing``), task requests, responses and log lines have
instead ``s`` (the sealed JSON) and ``a`` (the ant id, in clear: it names the key); an entry that
does not open, or a clear one where sealed ones are expected, is logged (never its content),
acked and dropped like a malformed one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.client import Pipeline
from redis.connection import Connection

from ants.messaging.base import (
    CONTROL_BATCH,
    CONTROL_ID_PREFIX,
    DEFAULT_ANT_TTL_SECS,
    LOG_STREAM_MAXLEN,
    LOG_STREAM_TTL_AFTER_END_SECS,
    LOG_STREAM_TTL_SECS,
    LOGS_GROUP,
    REGISTRATIONS_MAXLEN,
    RESPONSES_GROUP,
    SHARED_LOG_MAXLEN,
    TASKS_GROUP,
    Delivery,
    Transport,
    TransportClosed,
    decode_entry,
    ended_tasks,
)
from ants.messaging.sealing import KIND_LOG, KIND_RESPONSE, KIND_TASK, MessageSealer, SealError
from ants.protocol import ACTION_EXECUTE, AntRegistration, LogLine, TaskRequest, TaskResponse

logger = logging.getLogger(__name__)

FIELD = b"m"
SEALED_FIELD = b"s"
ANT_FIELD = b"a"
KINDS: dict[type, str] = {TaskRequest: KIND_TASK, TaskResponse: KIND_RESPONSE, LogLine: KIND_LOG}
# An entry with this field instead of FIELD on the responses stream only wakes the queen that
# reads it (a request was submitted in another process); it is acked and dropped, never returned.
WAKE_FIELD = b"w"
CLAIM_BATCH = 100
RawEntries = list[tuple[str, dict[bytes, bytes] | None]]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ack_commands(key: str, group: str, entry_ids: list[str]) -> list[tuple[Any, ...]]:
    """Acknowledge and delete entries (none: no commands)."""
    return [("XACK", key, group, *entry_ids), ("XDEL", key, *entry_ids)] if entry_ids else []


def _parse_read_reply(reply: Any) -> dict[str, RawEntries]:
    """Parse a raw RESP2 XREAD/XREADGROUP reply: [[key, [[id, [f, v, ...]], ...]], ...]."""
    out: dict[str, RawEntries] = {}
    if not reply:
        return out
    for key, entries in reply:
        items: RawEntries = []
        for entry_id, fields in entries or []:
            if fields is None:
                items.append((_s(entry_id), None))
                continue
            it = iter(fields)
            items.append((_s(entry_id), dict(zip(it, it, strict=False))))
        out[_s(key)] = items
    return out


class RedisStreamsTransport(Transport):
    """Queen <-> ant messaging over Redis Streams and consumer groups."""

    def __init__(
        self,
        redis_url: str,
        prefix: str = "formicary",
        sealer: MessageSealer | None = None,
        **redis_kwargs: Any,
    ) -> None:
        self.prefix = prefix
        self.sealer = sealer
        # RESP2 so the raw replies of blocking reads have one known shape.
        self._r = redis.Redis.from_url(redis_url, protocol=2, decode_responses=False, **redis_kwargs)
        self._pool = self._r.connection_pool
        self._lock = threading.Lock()
        self._groups: set[tuple[str, str]] = set()
        self._blocked: dict[int, int] = {}  # client id -> number of reads blocked on it
        self._wake_gen = 0
        # wake entries read but not yet acknowledged: they go with the next send or read (a
        # separate round trip before the pass they woke would delay its start)
        self._wake_acks: list[str] = []
        self._reg_cursor: str | None = None
        self._key_warned: dict[str, str] = {}  # ant id -> the encryption_key last warned about
        self._closed = False

    @property
    def redis(self) -> redis.Redis:
        """The underlying client (tests use it to inject raw entries)."""
        return self._r

    # -- keys ----------------------------------------------------------------------------------
    def key_tasks(self, ant_id: str) -> str:
        return f"{self.prefix}:ant:{ant_id}:tasks"

    def key_control(self, ant_id: str) -> str:
        return f"{self.prefix}:ant:{ant_id}:control"

    @property
    def key_responses(self) -> str:
        return f"{self.prefix}:responses"

    @property
    def key_registrations(self) -> str:
        return f"{self.prefix}:registrations"

    @property
    def key_ants(self) -> str:
        return f"{self.prefix}:ants"

    @property
    def key_all_logs(self) -> str:
        return f"{self.prefix}:logs"

    def key_logs(self, task_execution_id: int) -> str:
        return f"{self.prefix}:logs:{task_execution_id}"

    def raw_add(self, key: str, payload: str | bytes) -> str:
        """Append a raw entry (tests use it to inject malformed messages)."""
        return _s(self._r.xadd(key, {FIELD: payload}))

    # -- plumbing ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed("transport is closed")

    def _ensure_group(self, key: str, group: str) -> None:
        if (key, group) in self._groups:
            return
        try:
            # From id 0: entries sent before the consumer first connected are not skipped.
            self._r.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        with self._lock:
            self._groups.add((key, group))

    def _read(
        self,
        args: list[Any],
        block_ms: int,
        groups: list[tuple[str, str]],
        before: Sequence[tuple[Any, ...]] = (),
    ) -> dict[str, RawEntries]:
        """XREAD/XREADGROUP with BLOCK on a connection that ``wake()`` can unblock; ``before``:
        commands sent ahead of it in the same round trip (their replies, errors too, are read
        and dropped)."""
        self._check_open()
        for key, group in groups:
            self._ensure_group(key, group)
        gen = self._wake_gen
        try:
            return self._read_once(args, block_ms, gen, before)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream (and its group) vanished, e.g. FLUSHDB: recreate and retry once.
            with self._lock:
                self._groups.difference_update(groups)
            for key, group in groups:
                self._ensure_group(key, group)
            return self._read_once(args, block_ms, gen)

    def _read_once(
        self, args: list[Any], block_ms: int, gen: int, before: Sequence[tuple[Any, ...]] = ()
    ) -> dict[str, RawEntries]:
        cmd, rest = args[0], args[1:]
        if block_ms > 0:
            rest = ["BLOCK", block_ms, *rest]
        conn: Connection = self._pool.get_connection()
        cid: int | None = None
        try:
            if block_ms > 0:
                cid = self._client_id(conn)
                with self._lock:
                    if self._closed:
                        raise TransportClosed("transport is closed")
                    woken = self._wake_gen != gen
                    if not woken:
                        self._blocked[cid] = self._blocked.get(cid, 0) + 1
                if woken:  # a wake came first: no read, but what was to go before it goes
                    self._send_replied(conn, before)
                    return {}
            self._send_replied(conn, [*before, (cmd, *rest)], keep_last=True)
            reply = conn.read_response()
            if self._closed:
                raise TransportClosed("transport is closed")
        except (redis.ResponseError, TransportClosed):
            raise
        except BaseException as exc:
            conn.disconnect()
            if self._closed:
                raise TransportClosed("transport is closed") from exc
            raise
        finally:
            if cid is not None:
                with self._lock:
                    n = self._blocked.pop(cid, 1) - 1
                    if n > 0:
                        self._blocked[cid] = n
            self._pool.release(conn)
        return _parse_read_reply(reply)

    @staticmethod
    def _send_replied(conn: Connection, commands: Sequence[tuple[Any, ...]], keep_last: bool = False) -> None:
        """Send ``commands`` in one write and read (and drop) their replies, errors too; with
        ``keep_last`` the last one's reply is left for the caller to read."""
        if not commands:
            return
        conn.send_packed_command(conn.pack_commands(commands))
        for _ in range(len(commands) - 1 if keep_last else len(commands)):
            with contextlib.suppress(redis.ResponseError):
                conn.read_response()

    @staticmethod
    def _client_id(conn: Connection) -> int:
        # Cached per socket: a reconnect gets a new client id.
        sock = conn._sock
        if sock is None:
            conn.connect()
            sock = conn._sock
        if getattr(conn, "_formicary_sock", None) is not sock:
            conn.send_command("CLIENT", "ID")
            conn._formicary_cid = int(conn.read_response())  # type: ignore[attr-defined]
            conn._formicary_sock = sock  # type: ignore[attr-defined]
        return conn._formicary_cid  # type: ignore[attr-defined]

    # -- sealing -------------------------------------------------------------------------------
    def _entry(self, kind: str, ant_id: str, payload: str) -> dict[Any, Any]:
        """The fields of a new entry: the JSON in clear, or sealed with ``ant_id``'s key."""
        if self.sealer is None:
            return {FIELD: payload}
        return {SEALED_FIELD: self.sealer.seal(kind, ant_id, payload.encode()), ANT_FIELD: ant_id.encode()}

    def _decode(
        self, cls: type, fields: dict[bytes, bytes] | None, where: str, ant_id: str | None = None
    ) -> Any:
        """The message of an entry, or None (logged without its content) when it cannot be used.

        ``ant_id``: the reader's own id (requests are opened with its key whatever ``a`` says);
        otherwise the key is the one of the entry's ``a`` and the message must name that ant.
        """
        if fields is None or (self.sealer is None and SEALED_FIELD not in fields):
            return decode_entry(cls, None if fields is None else fields.get(FIELD), where)
        if self.sealer is None:
            why = "message encryption is off here (set FORMICARY_MESSAGE_ENCRYPTION and the key on both ends)"
            logger.warning("dropping encrypted entry %s: %s", where, why)
            return None
        sealed = fields.get(SEALED_FIELD)
        if sealed is None:
            logger.warning("dropping clear-text entry %s: message encryption is on", where)
            return None
        sender = ant_id if ant_id is not None else _s(fields.get(ANT_FIELD, b""))
        try:
            plain = self.sealer.open(KINDS[cls], sender, sealed)
        except SealError as exc:
            logger.warning("dropping entry %s of ant %r: %s", where, sender, exc)
            return None
        msg = decode_entry(cls, plain, where)
        if ant_id is None and msg is not None and getattr(msg, "ant_id", "") not in ("", sender):
            logger.warning("dropping entry %s: sealed by ant %r but names another ant", where, sender)
            return None
        return msg

    def _decode_group(
        self,
        cls: type,
        key: str,
        group: str,
        items: RawEntries,
        id_prefix: str = "",
        ant_id: str | None = None,
    ) -> list[Delivery[Any]]:
        out: list[Delivery[Any]] = []
        bad: list[str] = []
        for entry_id, fields in items:
            msg = self._decode(cls, fields, f"{key} {entry_id}", ant_id)
            if msg is None:
                bad.append(entry_id)
            else:
                out.append(Delivery(id_prefix + entry_id, msg))
        if bad:  # malformed entries are acked and dropped so nobody reads them again
            self._ack(key, group, bad)
        return out

    def _ack(self, key: str, group: str, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        pipe = self._r.pipeline(transaction=False)
        for command in _ack_commands(key, group, entry_ids):
            pipe.execute_command(*command)
        pipe.execute()

    def _claim(self, key: str, group: str, consumer: str, min_idle_ms: int) -> RawEntries:
        self._check_open()
        self._ensure_group(key, group)
        out: RawEntries = []
        start = "0-0"
        while True:
            # redis-py types a sync client's replies as Awaitable | Any
            reply: Any = self._r.xautoclaim(
                key, group, consumer, min_idle_ms, start_id=start, count=CLAIM_BATCH
            )
            start = _s(reply[0])
            for entry_id, fields in reply[1]:
                out.append((_s(entry_id), fields))
            if start == "0-0" or not reply[1]:
                return out

    # -- tasks ---------------------------------------------------------------------------------
    def _request_key(self, ant_id: str, req: TaskRequest) -> str:
        return self.key_tasks(ant_id) if req.action == ACTION_EXECUTE else self.key_control(ant_id)

    def send_task(self, ant_id: str, req: TaskRequest) -> None:
        self._check_open()
        self._r.xadd(self._request_key(ant_id, req), self._entry(KIND_TASK, ant_id, req.to_json()))

    def send_tasks(self, tasks: Iterable[tuple[str, TaskRequest]]) -> None:
        self._check_open()
        pipe = self._r.pipeline(transaction=False)
        for ant_id, req in tasks:
            pipe.xadd(self._request_key(ant_id, req), self._entry(KIND_TASK, ant_id, req.to_json()))
        if len(pipe):
            self._queue_wake_acks(pipe)
            pipe.execute()

    def _task_key(self, ant_id: str, delivery_id: str) -> tuple[str, str]:
        if delivery_id.startswith(CONTROL_ID_PREFIX):
            return self.key_control(ant_id), delivery_id[len(CONTROL_ID_PREFIX) :]
        return self.key_tasks(ant_id), delivery_id

    def read_tasks(
        self, ant_id: str, consumer: str, block_ms: int, count: int
    ) -> list[Delivery[TaskRequest]]:
        ctl, tasks = self.key_control(ant_id), self.key_tasks(ant_id)
        groups = [(ctl, TASKS_GROUP), (tasks, TASKS_GROUP)]
        if count > 0:
            # COUNT applies per stream: up to `count` EXECUTEs plus as many control entries.
            args = [
                "XREADGROUP",
                "GROUP",
                TASKS_GROUP,
                consumer,
                "COUNT",
                count,
                "STREAMS",
                ctl,
                tasks,
                ">",
                ">",
            ]
        else:
            args = ["XREADGROUP", "GROUP", TASKS_GROUP, consumer, "COUNT", CONTROL_BATCH, "STREAMS", ctl, ">"]
        reply = self._read(args, block_ms, groups)
        out = self._decode_group(TaskRequest, ctl, TASKS_GROUP, reply.get(ctl, []), CONTROL_ID_PREFIX, ant_id)
        return out + self._decode_group(TaskRequest, tasks, TASKS_GROUP, reply.get(tasks, []), "", ant_id)

    def ack_task(self, ant_id: str, delivery_id: str) -> None:
        key, entry_id = self._task_key(ant_id, delivery_id)
        self._ack(key, TASKS_GROUP, [entry_id])

    def claim_stale_tasks(self, ant_id: str, consumer: str, min_idle_ms: int) -> list[Delivery[TaskRequest]]:
        out: list[Delivery[TaskRequest]] = []
        for key, prefix in ((self.key_control(ant_id), CONTROL_ID_PREFIX), (self.key_tasks(ant_id), "")):
            items = self._claim(key, TASKS_GROUP, consumer, min_idle_ms)
            out += self._decode_group(TaskRequest, key, TASKS_GROUP, items, prefix, ant_id)
        return out

    # -- responses -----------------------------------------------------------------------------
    def send_response(self, resp: TaskResponse) -> None:
        self._check_open()
        pipe = self._r.pipeline(transaction=False)
        pipe.xadd(self.key_responses, self._entry(KIND_RESPONSE, resp.ant_id, resp.to_json()))
        self._queue_ended(pipe, [resp])
        pipe.execute()

    def _queue_ended(self, pipe: Pipeline, responses: Sequence[TaskResponse]) -> None:
        """The log streams of the tasks that ended expire soon (in the same round trip)."""
        for task_execution_id in ended_tasks(responses):
            pipe.expire(self.key_logs(task_execution_id), LOG_STREAM_TTL_AFTER_END_SECS)

    def send_batch(
        self,
        lines: Sequence[LogLine] = (),
        responses: Sequence[TaskResponse] = (),
        ack: tuple[str, str] | None = None,
        read: tuple[str, str, int] | None = None,
    ) -> list[Delivery[TaskRequest]]:
        self._check_open()
        # One round trip; with an ack, MULTI makes "response sent" and "request acked" one event.
        pipe = self._r.pipeline(transaction=ack is not None)
        self._queue_logs(pipe, lines)
        for resp in responses:
            pipe.xadd(self.key_responses, self._entry(KIND_RESPONSE, resp.ant_id, resp.to_json()))
        self._queue_ended(pipe, responses)
        if ack is not None:
            key, entry_id = self._task_key(*ack)
            pipe.xack(key, TASKS_GROUP, entry_id)
            pipe.xdel(key, entry_id)
        tasks_key = ""
        if read is not None:
            # Only the tasks stream: control requests stay with read_tasks (the ant's reader).
            ant_id, consumer, count = read
            tasks_key = self.key_tasks(ant_id)
            pipe.xreadgroup(TASKS_GROUP, consumer, {tasks_key: ">"}, count=max(count, 1))
        if not len(pipe):
            return []
        replies = pipe.execute(raise_on_error=False)
        reply = replies.pop() if read is not None else []
        for result in replies:
            if isinstance(result, Exception):
                raise result
        if isinstance(reply, Exception):  # e.g. NOGROUP after a FLUSHDB: read_tasks recreates it
            logger.warning("reading the next requests from %s failed: %s", tasks_key, reply)
            return []
        items: RawEntries = [
            (_s(entry_id), fields) for _key, entries in reply for entry_id, fields in entries
        ]
        return self._decode_group(TaskRequest, tasks_key, TASKS_GROUP, items, "", read[0] if read else None)

    def read_responses(self, group_consumer: str, block_ms: int, count: int) -> list[Delivery[TaskResponse]]:
        key = self.key_responses
        args = [
            "XREADGROUP",
            "GROUP",
            RESPONSES_GROUP,
            group_consumer,
            "COUNT",
            max(count, 1),
            "STREAMS",
            key,
            ">",
        ]
        before = _ack_commands(key, RESPONSES_GROUP, self._take_wake_acks())
        reply = self._read(args, block_ms, [(key, RESPONSES_GROUP)], before)
        return self._decode_responses(reply.get(key, []))

    def _take_wake_acks(self) -> list[str]:
        acks, self._wake_acks = self._wake_acks, []
        return acks

    def _queue_wake_acks(self, pipe: Pipeline) -> None:
        for command in _ack_commands(self.key_responses, RESPONSES_GROUP, self._take_wake_acks()):
            pipe.execute_command(*command)

    def _decode_responses(self, items: RawEntries) -> list[Delivery[TaskResponse]]:
        key = self.key_responses
        wakes = [entry_id for entry_id, fields in items if fields is not None and WAKE_FIELD in fields]
        if wakes:
            self.wakes_read += len(wakes)
            self._wake_acks += wakes  # acknowledged with the next send or read
            items = [item for item in items if item[1] is None or WAKE_FIELD not in item[1]]
        return self._decode_group(TaskResponse, key, RESPONSES_GROUP, items)

    def wake_queens(self) -> None:
        self._check_open()
        self._r.xadd(self.key_responses, {WAKE_FIELD: b"1"})

    def ack_response(self, delivery_id: str) -> None:
        self._ack(self.key_responses, RESPONSES_GROUP, [delivery_id])

    def ack_responses(self, delivery_ids: Iterable[str]) -> None:
        self._ack(self.key_responses, RESPONSES_GROUP, list(delivery_ids))

    def claim_stale_responses(self, consumer: str, min_idle_ms: int) -> list[Delivery[TaskResponse]]:
        key = self.key_responses
        return self._decode_responses(self._claim(key, RESPONSES_GROUP, consumer, min_idle_ms))

    # -- registrations -------------------------------------------------------------------------
    def registration_key(self, ant_id: str) -> str:
        return "" if self.sealer is None else self.sealer.key_id(ant_id)

    def _check_key(self, reg: AntRegistration) -> None:
        """Warn (once per ant and value) about an ant whose messages this process cannot read."""
        try:
            expected = self.registration_key(reg.ant_id)
        except SealError:
            return  # an ant holding one ant's key reads no one else's registration anyway
        if reg.encryption_key == expected or self._key_warned.get(reg.ant_id) == reg.encryption_key:
            return
        self._key_warned[reg.ant_id] = reg.encryption_key
        if not expected:
            why = "encrypts its messages and this process does not (FORMICARY_MESSAGE_ENCRYPTION is off here)"
        elif not reg.encryption_key:
            why = "does not encrypt its messages (set FORMICARY_MESSAGE_ENCRYPTION and FORMICARY_MESSAGE_KEY there)"
        else:
            why = "encrypts its messages with another FORMICARY_MESSAGE_KEY"
        logger.warning("ant %s %s: its messages and ours will be dropped", reg.ant_id, why)

    def publish_registration(self, reg: AntRegistration) -> None:
        self._check_open()
        payload = reg.to_json()
        pipe = self._r.pipeline(transaction=False)
        pipe.xadd(self.key_registrations, {FIELD: payload}, maxlen=REGISTRATIONS_MAXLEN, approximate=True)
        pipe.hset(self.key_ants, reg.ant_id, payload)
        pipe.execute()

    def read_registrations(self, block_ms: int) -> list[AntRegistration]:
        key = self.key_registrations
        if self._reg_cursor is None:
            # Start after the newest entry: history is what ant_registrations() is for.
            last: Any = self._r.xrevrange(key, count=1)  # (a sync reply: see _claim)
            self._reg_cursor = _s(last[0][0]) if last else "0-0"
        args = ["XREAD", "COUNT", 1000, "STREAMS", key, self._reg_cursor]
        items = self._read(args, block_ms, []).get(key, [])
        if items:
            self._reg_cursor = items[-1][0]
        out = []
        for entry_id, fields in items:
            reg = decode_entry(
                AntRegistration, None if fields is None else fields.get(FIELD), f"{key} {entry_id}"
            )
            if reg is not None:
                self._check_key(reg)
                out.append(reg)
        return out

    def ant_registrations(
        self, max_age_secs: float = DEFAULT_ANT_TTL_SECS, include_shutting_down: bool = False
    ) -> dict[str, AntRegistration]:
        self._check_open()
        now = time.time()
        out: dict[str, AntRegistration] = {}
        rows: Any = self._r.hgetall(self.key_ants)  # (a sync reply: see _claim)
        for ant_id, payload in rows.items():
            reg = decode_entry(AntRegistration, payload, f"{self.key_ants} {_s(ant_id)}")
            if reg is None or now - reg.created_at > max_age_secs:
                continue
            if reg.shutting_down and not include_shutting_down:
                continue
            out[reg.ant_id] = reg
        return out

    # -- logs ----------------------------------------------------------------------------------
    def publish_logs(self, lines: list[LogLine]) -> None:
        if not lines:
            return
        self._check_open()
        pipe = self._r.pipeline(transaction=False)
        self._queue_logs(pipe, lines)
        pipe.execute()

    def _queue_logs(self, pipe: Pipeline, lines: Sequence[LogLine]) -> None:
        keys = set()
        for line in lines:
            payload = self._entry(KIND_LOG, line.ant_id, line.to_json())
            key = self.key_logs(line.task_execution_id)
            keys.add(key)
            pipe.xadd(key, payload, maxlen=LOG_STREAM_MAXLEN, approximate=True)
            pipe.xadd(self.key_all_logs, payload, maxlen=SHARED_LOG_MAXLEN, approximate=True)
        for key in keys:
            pipe.expire(key, LOG_STREAM_TTL_SECS)

    def log_ttl_secs(self, task_execution_id: int) -> float | None:
        ms: int = self._r.pttl(self.key_logs(task_execution_id))  # type: ignore[assignment]  # sync client
        return None if ms < 0 else ms / 1000

    def read_logs(self, task_execution_id: int, after_id: str, block_ms: int) -> list[tuple[str, LogLine]]:
        key = self.key_logs(task_execution_id)
        args = ["XREAD", "COUNT", 1000, "STREAMS", key, after_id or "0"]
        out = []
        for entry_id, fields in self._read(args, block_ms, []).get(key, []):
            line = self._decode(LogLine, fields, f"{key} {entry_id}")
            if line is not None:
                out.append((entry_id, line))
        return out

    def read_all_logs(self, consumer: str, block_ms: int, count: int = 1000) -> list[Delivery[LogLine]]:
        key = self.key_all_logs
        args = ["XREADGROUP", "GROUP", LOGS_GROUP, consumer, "COUNT", max(count, 1), "STREAMS", key, ">"]
        reply = self._read(args, block_ms, [(key, LOGS_GROUP)])
        return self._decode_group(LogLine, key, LOGS_GROUP, reply.get(key, []))

    def ack_logs(self, delivery_ids: Iterable[str]) -> None:
        self._ack(self.key_all_logs, LOGS_GROUP, list(delivery_ids))

    def claim_stale_logs(self, consumer: str, min_idle_ms: int) -> list[Delivery[LogLine]]:
        key = self.key_all_logs
        return self._decode_group(
            LogLine, key, LOGS_GROUP, self._claim(key, LOGS_GROUP, consumer, min_idle_ms)
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def wake(self) -> None:
        with self._lock:
            self._wake_gen += 1
            blocked = list(self._blocked)
        for cid in blocked:
            try:
                self._r.client_unblock(cid)
            except redis.RedisError as exc:  # the read may have finished meanwhile
                logger.debug("CLIENT UNBLOCK %s failed: %s", cid, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.wake()
        # Let unblocked readers hand their connections back before the pool is torn down.
        deadline = time.monotonic() + 1.0
        while self._blocked and time.monotonic() < deadline:
            time.sleep(0.005)
        self._pool.disconnect()
