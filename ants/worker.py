"""The ant worker: pulls task requests addressed to this ant, runs them, reports back.

Life of an EXECUTE request:

1. ``run_once`` reads at most as many EXECUTE requests as there are free slots (CANCEL, PING
   and other control actions come on a separate stream and are read even when full).
2. A pool thread queues an EXECUTING response, runs the executor in
   ``work_root/<task_execution_id>-<attempt>`` and queues its log lines. Queued responses and
   lines go out together at least every 50 ms, and whatever is still queued when the task ends
   goes in the round trip of its final response and the ack of its request (one step): a short
   task costs one round trip. A crash before that leaves the request pending: the restarted ant
   claims it (``claim_stale_tasks``) and drops it, like every request addressed to its previous
   run (``ant_started_at``): the queens declare those attempts lost when they hear the new start
   time in its registration, and send them again as new attempts.
3. The slot is freed. A full ant reads its next EXECUTE request in that same round trip;
   otherwise, if the ant was full, the blocked read is woken so new work starts at once. The
   working directory is moved aside and deleted by the background thread.

Idempotency on the ant: a duplicate EXECUTE of an attempt that is running is acked and
ignored; one that recently finished gets its final response again; one that was cancelled
before it started is answered CANCELLED.

Shutdown (``stop()``, SIGTERM or SIGINT): no new EXECUTE is read, control requests still are,
in-flight tasks finish (after ``shutdown_grace_secs`` they are cancelled and reported FAILED
with ERR_ANT_SHUTDOWN so the queen can retry them elsewhere), logs are flushed and a final
registration with ``shutting_down=True`` is published. A second signal cancels at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ants import reaper
from ants.config import AntConfig
from ants.executors.base import (
    ERR_EXECUTOR,
    ExecutionContext,
    ExecutionResult,
    UnsupportedMethod,
    executor_for,
)
from ants.messaging.base import Delivery, Transport, TransportClosed
from ants.protocol import (
    ACTION_CANCEL,
    ACTION_EXECUTE,
    ACTION_PING,
    STATUS_CANCELLED,
    STATUS_COMPLETED,
    STATUS_EXECUTING,
    STATUS_FAILED,
    AntRegistration,
    LogLine,
    TaskRequest,
    TaskResponse,
)

logger = logging.getLogger(__name__)

LOG_FLUSH_SECS = 0.05  # queued log lines and EXECUTING responses wait at most this long
REAP_SECS = 1.0  # how often exited orphans of tasks are waited for (ants/reaper.py)
LOG_FLUSH_LINES = 500  # flush early when this many lines are waiting
MAX_BUFFERED_LOG_LINES = 100_000  # kept for retry while the transport is down
LOG_PUBLISH_CHUNK = 2000  # lines per publish (one pipeline): a failure re-sends at most this many
# A task printing faster than its lines can be sent waits here (its pipe fills, the process
# blocks): the ant's memory stays flat however much a task prints.
LOG_BACKPRESSURE_LINES = 20_000
LOG_BACKPRESSURE_MAX_WAIT_SECS = 1.0
FINAL_SEND_GIVE_UP_SECS = 10.0  # a stopping ant tries this long to send a task's final answer
FULL_BLOCK_MS = 200  # a full ant re-checks its slots at least this often (wake() is the fast path)
ERR_UNSUPPORTED_METHOD = "ERR_UNSUPPORTED_METHOD"
ERR_UNSUPPORTED_ACTION = "ERR_UNSUPPORTED_ACTION"
ERR_ANT_EXCEPTION = "ERR_ANT_EXCEPTION"
ERR_ANT_SHUTDOWN = "ERR_ANT_SHUTDOWN"
RECENT_KEYS = 2000
TRASH_DIR = ".formicary-trash"  # under work_root: finished working directories wait here
# Emptied working directories are kept (renamed) for the next tasks: on ext4 a rename costs about
# a fifth of the mkdir and rmdir it saves (no block to allocate, free and discard).
SPARE_PREFIX = ".formicary-spare-"
MAX_SPARES = 8

Key = tuple[int, int]
TASK_DIR = re.compile(r"\d+-\d+")  # a task's working directory: <task execution id>-<attempt>


@dataclass
class _Running:
    req: TaskRequest
    delivery_id: str
    cancel_event: threading.Event = field(default_factory=threading.Event)
    started_at: float = field(default_factory=time.time)
    seq: int = 0
    shutdown_cancel: bool = False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def spec_cost_factor(spec: dict[str, Any]) -> float:
    """The task's ``cost_factor`` (the reference's executor option), when its executor measured none."""
    value = spec.get("cost_factor")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _noop_before(req: TaskRequest, workdir: Path) -> None:
    return None


def _noop_after(req: TaskRequest, workdir: Path, result: ExecutionResult) -> None:
    return None


class AntWorker:
    """Runs tasks for one ant id. Thread-safe; ``run_forever`` runs on the calling thread."""

    def __init__(
        self,
        config: AntConfig,
        transport: Transport,
        *,
        consumer: str | None = None,
        executor_lookup: Callable[[str, Any], Any] = executor_for,
        block_ms: int = 1000,
    ) -> None:
        self.config = config
        self.transport = transport
        # One consumer name per ant id: a restarted ant finds its own pending requests.
        self.consumer = consumer or config.ant_id
        self.block_ms = block_ms
        self.executor_lookup = executor_lookup
        # Hooks for artifact support: called on the task thread around the executor.
        self.before_execute: Callable[[TaskRequest, Path], None] = _noop_before
        self.after_execute: Callable[[TaskRequest, Path, ExecutionResult], None] = _noop_after
        # Called with (request, stream, line) for every line a task prints (the artifact hooks keep
        # the task's log this way); after the line is queued for the queens.
        self.log_listeners: list[Callable[[TaskRequest, str, str], None]] = []
        # Handlers for TERMINATE_CONTAINER / LIST_CONTAINERS etc. (docker/k8s modules add them).
        self.action_handlers: dict[str, Callable[[TaskRequest], TaskResponse | None]] = {}
        # The running containers each heartbeat carries (ants.containers installs a bounded one).
        self.heartbeat_containers: Callable[[], list[dict[str, Any]]] = list

        self.started_at = time.time()
        self.total_executed = 0
        self.peak_load = 0  # highest number of concurrently running tasks (tests, metrics)
        self._lock = threading.Lock()
        self._running: dict[Key, _Running] = {}
        self._backlog: deque[Delivery[TaskRequest]] = deque()
        self._cancelled: OrderedDict[Key, None] = OrderedDict()
        self._finished: OrderedDict[Key, TaskResponse] = OrderedDict()
        self._pool = ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix=f"ant-{config.ant_id}"
        )

        # Two conditions on one lock: the flusher waits for lines, a task printing faster than
        # they are sent waits for room. A flush wakes only the latter (a flush per task must not
        # wake the flusher, which would send the next task's lines early in a round trip of
        # their own).
        log_lock = threading.RLock()  # what a Condition() makes for itself
        self._log_cond = threading.Condition(log_lock)
        self._log_room = threading.Condition(log_lock)
        self._log_buf: list[LogLine] = []
        self._out_responses: list[TaskResponse] = []  # EXECUTING answers, sent with the lines
        self._flush_lock = threading.Lock()  # one flush at a time keeps lines in order
        self._trash = Path(config.work_root) / TRASH_DIR
        self._trash_waiting = threading.Event()
        self._trash_waiting.set()  # a crashed run may have left some
        self._spares: list[Path] = []
        self._spares_lock = threading.Lock()

        self._stop = threading.Event()
        self._bg_stop = threading.Event()
        self._bg: threading.Thread | None = None
        self._recovered = False
        self._last_heartbeat = 0.0
        self._signals = 0

    # -- public --------------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def current_load(self) -> int:
        with self._lock:
            return len(self._running)

    def stop(self) -> None:
        """Stop taking work; ``run_forever`` finishes in-flight tasks and returns."""
        self._stop.set()
        self.transport.wake()

    def cancel_all(self, shutdown: bool = True) -> None:
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            run.shutdown_cancel = shutdown
            run.cancel_event.set()

    def registration(self, shutting_down: bool = False) -> AntRegistration:
        with self._lock:
            allocations: dict[str, dict[str, str]] = {}
            for run in self._running.values():
                allocations.setdefault(str(run.req.job_request_id), {})[run.req.task_type] = STATUS_EXECUTING
            load = len(self._running)
            total = self.total_executed
        topic_fn = getattr(self.transport, "key_tasks", None)
        try:
            containers = self.heartbeat_containers()
        except Exception:
            logger.exception("ant %s: listing containers for the heartbeat failed", self.config.ant_id)
            containers = []
        return AntRegistration(
            ant_id=self.config.ant_id,
            ant_topic=topic_fn(self.config.ant_id) if callable(topic_fn) else "",
            max_capacity=self.config.concurrency,
            tags=list(self.config.tags),
            methods=list(self.config.methods),
            current_load=load,
            total_executed=total,
            allocations=allocations,
            created_at=time.time(),
            ant_started_at=self.started_at,
            shutting_down=shutting_down,
            organization_id=self.config.organization_id,
            encryption_key=self.transport.registration_key(self.config.ant_id),
            containers=containers,
        )

    def heartbeat(self, shutting_down: bool = False) -> None:
        self._last_heartbeat = time.monotonic()
        self.transport.publish_registration(self.registration(shutting_down))

    def start(self) -> None:
        """Start the background thread (heartbeats, log flushing, deleting old working
        directories, reaping what tasks left running once ``reaper.enable`` was called);
        idempotent."""
        if self._bg is None:
            self.stop_previous_tasks()
            self._drop_spares(Path(self.config.work_root).glob(f"{SPARE_PREFIX}*"))  # a crashed run's
            try:
                self._trash.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # working directories are then deleted in place
                logger.warning("ant %s: no folder for old working directories: %s", self.config.ant_id, exc)
            self._bg = threading.Thread(
                target=self._background, name=f"ant-{self.config.ant_id}-bg", daemon=True
            )
            self._bg.start()

    def run_once(self, block_ms: int | None = None) -> int:
        """Read and dispatch one batch of requests; returns how many were read."""
        block_ms = self.block_ms if block_ms is None else block_ms
        self.start()
        handled = 0
        if not self._recovered:
            self._recovered = True
            # Whatever this ant id read but never acked (a crash) is ours to run again.
            for delivery in self.transport.claim_stale_tasks(self.config.ant_id, self.consumer, 0):
                self._dispatch(delivery)
                handled += 1
        self._start_backlog()
        with self._lock:
            free = self.config.concurrency - len(self._running) - len(self._backlog)
        if self._stop.is_set():
            free = 0
        wait = block_ms if free > 0 else min(block_ms, FULL_BLOCK_MS)
        deliveries = self.transport.read_tasks(self.config.ant_id, self.consumer, wait, max(free, 0))
        for delivery in deliveries:
            self._dispatch(delivery)
        return handled + len(deliveries)

    def run_forever(self) -> None:
        """Loop until ``stop()`` (or SIGTERM/SIGINT), then drain and leave."""
        restore = self._install_signal_handlers()
        try:
            self.start()
            self.heartbeat()
            backoff = 0.1
            while not self._stop.is_set():
                try:
                    self.run_once()
                    backoff = 0.1
                except TransportClosed:
                    break
                except Exception:
                    logger.exception(
                        "ant %s: reading requests failed; retrying in %.1fs", self.config.ant_id, backoff
                    )
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
            self._drain()
        finally:
            self.shutdown()
            restore()

    def shutdown(self) -> None:
        """Wait for in-flight tasks, flush logs, publish the final registration, stop threads."""
        self._stop.set()
        self._pool.shutdown(wait=True)
        self._bg_stop.set()
        with self._log_cond:
            self._log_cond.notify_all()
            self._log_room.notify_all()
        if self._bg is not None:
            self._bg.join(timeout=5)
        self._empty_trash()
        with self._spares_lock:
            spares, self._spares = self._spares, []
        self._drop_spares(spares)
        try:
            self.flush()
            self.heartbeat(shutting_down=True)
        except TransportClosed:
            pass
        except Exception:
            logger.exception("ant %s: final registration failed", self.config.ant_id)

    def stop_previous_tasks(self) -> int:
        """Kill what the SHELL tasks of a crashed earlier run of this ant left running (each
        command has its own session, so it outlives a ``kill -9`` of the ant): the queens send
        those tasks again when they hear this run, and they must not run twice at once. They are
        found by ``FORMICARY_WORKDIR`` under this ant's work root (Linux ``/proc``; elsewhere,
        nothing is done). Returns how many process groups were killed."""
        root = os.path.realpath(self.config.work_root)
        proc = Path("/proc")
        if "SHELL" not in self.config.methods or not proc.is_dir():
            return 0
        own, groups = os.getpgrp(), set()
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            for var in environ.split(b"\0"):
                if var.startswith(b"FORMICARY_WORKDIR="):
                    workdir = os.path.realpath(var.partition(b"=")[2].decode(errors="replace"))
                    # only this ant's task folders (<work root>/<task id>-<attempt>)
                    if os.path.dirname(workdir) == root and TASK_DIR.fullmatch(os.path.basename(workdir)):
                        with contextlib.suppress(OSError):
                            groups.add(os.getpgid(int(entry.name)))
                    break
        for pgid in groups - {own}:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        if groups:
            logger.warning(
                "ant %s: killed %d commands left by its previous run", self.config.ant_id, len(groups)
            )
        return len(groups - {own})

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, delivery: Delivery[TaskRequest]) -> None:
        req = delivery.message
        try:
            if req.action == ACTION_EXECUTE:
                self._on_execute(delivery)
            elif req.action == ACTION_CANCEL:
                self._on_cancel(delivery)
            elif req.action == ACTION_PING:
                self.heartbeat()
                self._reply(delivery, STATUS_COMPLETED, exit_message="PONG")
            else:
                handler = self.action_handlers.get(req.action)
                resp = handler(req) if handler is not None else None
                if resp is not None:
                    self.transport.send_response_and_ack(self.config.ant_id, delivery.id, resp)
                else:
                    msg = f"action {req.action} is not supported by ant {self.config.ant_id}"
                    self._reply(delivery, STATUS_FAILED, error_code=ERR_UNSUPPORTED_ACTION, error_message=msg)
        except TransportClosed:
            raise
        except Exception:
            # Left unacked: it is retried when this ant restarts.
            logger.exception("ant %s: handling %s request failed", self.config.ant_id, req.action)

    def _reply(self, delivery: Delivery[TaskRequest], status: str, **fields: Any) -> None:
        req = delivery.message
        resp = TaskResponse.answering(req, self.config.ant_id, status, ended_at=time.time(), **fields)
        self.transport.send_response_and_ack(self.config.ant_id, delivery.id, resp)

    def _on_execute(self, delivery: Delivery[TaskRequest]) -> None:
        req = delivery.message
        key = req.key
        if req.ant_started_at and req.ant_started_at != self.started_at:
            # sent to an earlier process under this id: the queens declared it lost when they
            # heard this one start and send it again (running it too could run it twice at once)
            logger.info("ant %s: %s was sent to its previous run; dropped", self.config.ant_id, key)
            self.transport.ack_task(self.config.ant_id, delivery.id)
            return
        with self._lock:
            if key in self._running:
                duplicate, finished, cancelled = True, None, False
            else:
                duplicate, finished, cancelled = False, self._finished.get(key), key in self._cancelled
        if duplicate:
            logger.info("ant %s: duplicate EXECUTE %s ignored", self.config.ant_id, key)
            self.transport.ack_task(self.config.ant_id, delivery.id)
            return
        if finished is not None:
            self.transport.send_response_and_ack(self.config.ant_id, delivery.id, finished)
            return
        if cancelled:
            self._reply(delivery, STATUS_CANCELLED, exit_message="task cancelled before it started")
            return
        if self._stop.is_set():
            return  # not acked: a restarted ant (or the queen's recovery) takes it
        with self._lock:
            full = len(self._running) >= self.config.concurrency
            if full:
                # After a crash-recovery claim or a race with a finishing task's read: keep it
                # (still pending) until a slot frees.
                self._backlog.append(delivery)
                return
            run = _Running(req=req, delivery_id=delivery.id)
            self._running[key] = run
            self.peak_load = max(self.peak_load, len(self._running))
        self._pool.submit(self._execute, run)

    def _start_backlog(self) -> None:
        while True:
            with self._lock:
                if not self._backlog or len(self._running) >= self.config.concurrency or self._stop.is_set():
                    return
                delivery = self._backlog.popleft()
            self._on_execute(delivery)

    def _on_cancel(self, delivery: Delivery[TaskRequest]) -> None:
        req = delivery.message
        with self._lock:
            key = req.key
            self._cancelled[key] = None
            while len(self._cancelled) > RECENT_KEYS:
                self._cancelled.popitem(last=False)
            runs = [r for k, r in self._running.items() if k == key]
            queued = [d for d in self._backlog if d.message.key == key]
            for d in queued:
                self._backlog.remove(d)
        for run in runs:
            logger.info("ant %s: cancelling %s", self.config.ant_id, key)
            run.cancel_event.set()
        for d in queued:
            self._reply(d, STATUS_CANCELLED, exit_message="task cancelled before it started")
        self.transport.ack_task(self.config.ant_id, delivery.id)

    # -- execution (pool threads) --------------------------------------------------------------
    def _execute(self, run: _Running) -> None:
        req = run.req
        cfg = self.config
        workdir = Path(cfg.work_root) / f"{req.task_execution_id}-{req.attempt}"
        executing = TaskResponse.answering(req, cfg.ant_id, STATUS_EXECUTING, started_at=run.started_at)
        with self._log_cond:
            self._out_responses.append(executing)

        method = (req.method or cfg.default_method).upper()
        try:
            if method not in cfg.methods:
                raise UnsupportedMethod(f"method {method} is not enabled on ant {cfg.ant_id}")
            executor = self.executor_lookup(method, cfg)
            self._new_workdir(workdir)
            self.before_execute(req, workdir)
            deadline = time.monotonic() + req.timeout_secs if req.timeout_secs else None
            ctx = ExecutionContext(
                workdir=workdir,
                log=lambda stream, line: self._log(run, stream, line),
                cancel_event=run.cancel_event,
                deadline=deadline,
            )
            result = executor.execute(req, ctx)
            self.after_execute(req, workdir, result)
        except UnsupportedMethod as exc:
            result = ExecutionResult(
                status=STATUS_FAILED,
                exit_message=str(exc),
                error_code=ERR_UNSUPPORTED_METHOD,
                error_message=str(exc),
            )
        except Exception as exc:
            logger.exception("ant %s: task %s raised", cfg.ant_id, req.key)
            msg = f"{type(exc).__name__}: {exc}"
            result = ExecutionResult(
                status=STATUS_FAILED, exit_message=msg, error_code=ERR_ANT_EXCEPTION, error_message=msg
            )
        if run.shutdown_cancel and result.status == STATUS_CANCELLED:
            # Not the user's cancel: report a retryable failure instead.
            result.status, result.error_code = STATUS_FAILED, ERR_ANT_SHUTDOWN
            result.error_message = result.exit_message = f"ant {cfg.ant_id} shut down"
        if result.status == STATUS_FAILED and not result.error_code and result.exit_code is None:
            result.error_code = ERR_EXECUTOR

        outcome = result.outcome() | {"cost_factor": result.cost_factor or spec_cost_factor(req.spec)}
        resp = TaskResponse.answering(
            req, cfg.ant_id, **outcome, started_at=run.started_at, ended_at=time.time()
        )
        if not cfg.keep_workdirs:
            self._discard_workdir(workdir)  # gone before the queen hears "finished"
        sent = False
        taken: list[Delivery[TaskRequest]] = []
        with self._lock:
            # a full ant's reader waits on control requests only: fetch this slot's next task
            # in the round trip of this answer
            full = len(self._running) >= cfg.concurrency and not self._backlog
        read = (cfg.ant_id, self.consumer, 1) if full and not self._stop.is_set() else None
        try:
            sent, taken = self._send_final(resp, run.delivery_id, read)
        finally:
            self._task_done(req.key, resp if sent else None, taken)

    def _send_final(
        self, resp: TaskResponse, delivery_id: str, read: tuple[str, str, int] | None
    ) -> tuple[bool, list[Delivery[TaskRequest]]]:
        """Send a task's final answer (after its lines) with the ack of its request, trying again
        while the transport is down (a Redis restart): an answer given up on leaves its task
        running in the queens' eyes until the task's timeout. The slot stays taken meanwhile; a
        stopping ant gives up after FINAL_SEND_GIVE_UP_SECS."""
        cfg, delay, give_up_at = self.config, 0.1, None
        while True:
            try:
                # every line lands before the response that ends the task
                return True, self.flush(final=resp, ack=(cfg.ant_id, delivery_id), read=read)
            except TransportClosed:
                return False, []
            except Exception:
                if self._stop.is_set():
                    give_up_at = give_up_at or time.monotonic() + FINAL_SEND_GIVE_UP_SECS
                if give_up_at is not None and time.monotonic() >= give_up_at:
                    logger.exception(
                        "ant %s: response for %s not sent; the request stays pending", cfg.ant_id, resp.key
                    )
                    return False, []
                logger.warning("ant %s: sending the response for %s failed; trying again in %.1fs",
                               cfg.ant_id, resp.key, delay, exc_info=True)  # fmt: skip
                time.sleep(delay)
                delay, read = min(delay * 2, 2.0), None

    def _task_done(self, key: Key, resp: TaskResponse | None, taken: list[Delivery[TaskRequest]]) -> None:
        """Free the slot of ``key`` (answered with ``resp`` unless None) and start ``taken``."""
        cfg = self.config
        with self._lock:
            was_full = len(self._running) + len(self._backlog) >= cfg.concurrency
            self._running.pop(key, None)
            self.total_executed += 1
            if resp is not None:
                self._finished[key] = resp
                while len(self._finished) > RECENT_KEYS:
                    self._finished.popitem(last=False)
            # queued under the same lock: run_once never sees the slot free and reads one more
            self._backlog.extend(d for d in taken if d.message.action == ACTION_EXECUTE)
        try:
            for delivery in taken:
                if delivery.message.action != ACTION_EXECUTE:
                    self._dispatch(delivery)
            self._start_backlog()
        except Exception:
            logger.exception("ant %s: starting the next request failed", cfg.ant_id)
        if not was_full or self._stop.is_set():
            return
        with self._lock:
            free = len(self._running) + len(self._backlog) < cfg.concurrency
        if free:
            try:
                self.transport.wake()  # the reader is blocked on control only: take new work
            except Exception:
                logger.debug("wake failed", exc_info=True)

    def _new_workdir(self, workdir: Path) -> None:
        """An empty working directory at ``workdir``: a spare renamed, or a new one."""
        with self._spares_lock:
            spare = self._spares.pop() if self._spares else None
        if spare is not None:
            try:
                spare.rename(workdir)  # replaces an empty folder of that name, never a full one
                return
            except FileNotFoundError:
                pass
            except OSError:  # a redelivered attempt's folder is there: it starts clean below
                with self._spares_lock:
                    self._spares.append(spare)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)

    def _discard_workdir(self, workdir: Path) -> None:
        """Move it aside at once; the background thread deletes it. Deleting a tree costs the
        filesystem about half a millisecond per task, which the slot need not wait for. An
        empty one (many short tasks leave nothing behind) becomes a spare for the next task,
        or is removed at once."""
        try:
            with os.scandir(workdir) as entries:
                empty = next(entries, None) is None
        except OSError:  # gone already
            return
        if empty:
            with self._spares_lock:
                room = len(self._spares) < MAX_SPARES
            spare = workdir.with_name(f"{SPARE_PREFIX}{uuid.uuid4().hex[:8]}")
            try:
                if room:
                    workdir.rename(spare)
                    with self._spares_lock:
                        self._spares.append(spare)
                else:
                    workdir.rmdir()
                return
            except OSError:  # something appeared in it meanwhile: aside as a full one
                pass
        try:
            workdir.rename(self._trash / f"{workdir.name}-{uuid.uuid4().hex[:8]}")
        except OSError:  # gone already, or no trash folder: delete it here
            shutil.rmtree(workdir, ignore_errors=True)
            return
        self._trash_waiting.set()

    def _drop_spares(self, spares: Iterable[Path]) -> None:
        for spare in spares:
            with contextlib.suppress(OSError):
                spare.rmdir()

    def _empty_trash(self) -> None:
        if not self._trash_waiting.is_set():
            return
        self._trash_waiting.clear()
        try:
            entries = list(self._trash.iterdir())
        except OSError:
            return
        for entry in entries:
            shutil.rmtree(entry, ignore_errors=True)

    # -- logs ----------------------------------------------------------------------------------
    def _log(self, run: _Running, stream: str, line: str) -> None:
        entry = LogLine(
            task_execution_id=run.req.task_execution_id,
            job_request_id=run.req.job_request_id,
            attempt=run.req.attempt,
            seq=run.next_seq(),
            stream=stream,
            line=line,
            ts=time.time(),
            ant_id=self.config.ant_id,
        )
        with self._log_cond:
            self._log_buf.append(entry)
            if len(self._log_buf) >= LOG_FLUSH_LINES:
                self._log_cond.notify_all()
            if len(self._log_buf) >= LOG_BACKPRESSURE_LINES:
                # bounded: with the transport down the buffer is trimmed instead (flush)
                deadline = time.monotonic() + LOG_BACKPRESSURE_MAX_WAIT_SECS
                while len(self._log_buf) >= LOG_BACKPRESSURE_LINES and not self._bg_stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._log_room.wait(left)
        for listener in self.log_listeners:
            try:
                listener(run.req, stream, line)
            except Exception:  # a listener never breaks the task that printed
                logger.exception("ant %s: log listener failed", self.config.ant_id)

    def flush(
        self,
        final: TaskResponse | None = None,
        ack: tuple[str, str] | None = None,
        read: tuple[str, str, int] | None = None,
    ) -> list[Delivery[TaskRequest]]:
        """Send the queued log lines and responses, then ``final`` with ``ack`` and ``read``
        (see ``Transport.send_batch``) in the last round trip; returns the requests read."""
        with self._flush_lock:
            with self._log_cond:
                lines, self._log_buf = self._log_buf, []
                responses, self._out_responses = self._out_responses, []
                self._log_room.notify_all()  # writers waiting on a full buffer go on
            if final is not None:
                # the task ended before its EXECUTING went out: the queen needs only the end
                responses = [
                    r for r in responses
                    if not (r.status == STATUS_EXECUTING and r.key == final.key)
                ]  # fmt: skip
                responses.append(final)
            elif not lines and not responses:
                return []
            try:
                # at most LOG_PUBLISH_CHUNK lines per round trip: a failure re-sends only the unsent
                while len(lines) > LOG_PUBLISH_CHUNK:
                    self.transport.send_batch(lines[:LOG_PUBLISH_CHUNK])
                    lines = lines[LOG_PUBLISH_CHUNK:]
                return self.transport.send_batch(lines, responses, ack=ack, read=read)
            except Exception:
                if final is not None:
                    responses.pop()
                with self._log_cond:
                    # Keep the unsent ones (in order, bounded) for the next flush.
                    self._log_buf = (lines + self._log_buf)[-MAX_BUFFERED_LOG_LINES:]
                    self._out_responses = responses + self._out_responses
                raise

    # -- background: heartbeats, flushing, deleting working directories ------------------------
    def _background(self) -> None:
        reaped_at = 0.0
        while not self._bg_stop.is_set():
            with self._log_cond:
                if len(self._log_buf) < LOG_FLUSH_LINES:
                    self._log_cond.wait(LOG_FLUSH_SECS)
            if self._bg_stop.is_set():
                return
            self._empty_trash()
            try:
                if time.monotonic() - reaped_at >= REAP_SECS:
                    reaped_at = time.monotonic()
                    reaper.reap()
                self.flush()
                if (
                    time.monotonic() - self._last_heartbeat >= self.config.heartbeat_secs
                    and not self._stop.is_set()
                ):
                    self.heartbeat()
            except TransportClosed:
                return
            except Exception:
                logger.exception("ant %s: background publish failed", self.config.ant_id)
                self._bg_stop.wait(1.0)

    # -- shutdown ------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Let in-flight tasks finish while still handling CANCEL; cancel after the grace period."""
        grace = self.config.shutdown_grace_secs
        give_up = None if grace is None else time.monotonic() + grace
        while self.current_load:
            if give_up is not None and time.monotonic() >= give_up:
                logger.warning(
                    "ant %s: grace period over; cancelling %d tasks", self.config.ant_id, self.current_load
                )
                self.cancel_all(shutdown=True)
                give_up = None
            try:
                self.run_once(block_ms=100)
            except TransportClosed:
                return
            except Exception:
                logger.exception("ant %s: reading control requests failed", self.config.ant_id)
                time.sleep(0.1)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: Any) -> None:
            self._signals += 1
            # Only set flags here: wake() takes locks the interrupted code may hold.
            self._stop.set()
            if self._signals > 1:
                threading.Thread(target=self.cancel_all, daemon=True).start()
            threading.Thread(target=self.transport.wake, daemon=True).start()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore
