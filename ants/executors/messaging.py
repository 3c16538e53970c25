"""MESSAGING executor: the task is done by a custom worker listening on a Redis list.

The task names two queues (``messaging_request_queue`` and ``messaging_reply_queue``); both
names are used as Redis keys exactly as written. For each attempt the executor

1. RPUSHes a request (JSON, format ``formicary.messaging/1`` below) onto the request queue;
   workers take requests with BLPOP (several workers may share one queue);
2. waits on the attempt's own reply key ``<messaging_reply_queue>:<task_execution_id>:<attempt>``
   (also given in the request as ``reply_to``) with short BLPOPs, so replies of other tasks are
   never read, let alone lost; a restarted ant re-running the attempt finds a reply already
   there;
3. ends the task with the reply's status, exit code, context and output lines.

Cancel and timeout stop the wait at once: ``<reply_to>:cancel`` is set (for workers that want
to check it) and the task is CANCELLED or FAILED with ``ERR_TASK_TIMEOUT``. Without a task
``timeout`` the wait is capped at ``DEFAULT_TIMEOUT_SECS``.

The ant needs Redis: ``redis_url`` in the ant config, else ``FORMICARY_MESSAGING_REDIS_URL`` or
``REDIS_URL``. An ant without one (standalone) fails MESSAGING tasks with
``ERR_MESSAGING_UNAVAILABLE`` saying so. The full message format is in docs/messaging.md.

Request::

    {"format": "formicary.messaging/1", "action": "EXECUTE", "task_execution_id": 7, "attempt": 1,
     "job_request_id": 3, "job_execution_id": 4, "job_type": "...", "job_version": "...",
     "task_type": "...", "organization_id": "1", "user_id": "2", "ant_id": "...",
     "variables": {...}, "spec": {...}, "timeout_secs": 60.0, "deadline": 1700000000.0,
     "reply_to": "<reply queue>:7:1", "sent_at": 1700000000.0}

Reply (pushed onto ``reply_to``)::

    {"task_execution_id": 7, "attempt": 1, "status": "COMPLETED" | "FAILED", "exit_code": "0",
     "exit_message": "", "error_code": "", "error_message": "", "task_context": {...},
     "job_context": {...}, "stdout": ["line", ...]}
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis

from ants.executors.base import (
    ERR_TASK_TIMEOUT,
    ERR_VALIDATION,
    ExecutionContext,
    ExecutionResult,
    Redactor,
    as_str,
    result_from_answer,
)
from ants.executors.websocket import parse_answer
from ants.protocol import STATUS_CANCELLED, STATUS_FAILED, TaskRequest

logger = logging.getLogger(__name__)

FORMAT = "formicary.messaging/1"
ERR_MESSAGING_UNAVAILABLE = "ERR_MESSAGING_UNAVAILABLE"
ERR_MESSAGING_REPLY = "ERR_MESSAGING_REPLY"
ERR_MESSAGING_REDIS = "ERR_MESSAGING_REDIS"
DEFAULT_TIMEOUT_SECS = 3600.0
POLL_SECS = 0.25  # one BLPOP waits at most this long, then cancel/timeout are checked
REPLY_KEY_TTL_SECS = 24 * 3600
MAX_QUEUE_NAME = 512


def reply_key(reply_queue: str, task_execution_id: int, attempt: int) -> str:
    return f"{reply_queue}:{task_execution_id}:{attempt}"


def request_message(req: TaskRequest, reply_to: str, deadline_epoch: float | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "action": "EXECUTE",
        "task_execution_id": req.task_execution_id,
        "attempt": req.attempt,
        "job_request_id": req.job_request_id,
        "job_execution_id": req.job_execution_id,
        "job_type": req.job_type,
        "job_version": req.job_version,
        "task_type": req.task_type,
        "organization_id": req.organization_id,
        "user_id": req.user_id,
        "ant_id": req.ant_id,
        "variables": dict(req.variables),
        "spec": dict(req.spec),
        "timeout_secs": req.timeout_secs,
        "deadline": deadline_epoch,
        "reply_to": reply_to,
        "sent_at": time.time(),
    }


class MessagingExecutor:
    """Runs MESSAGING tasks; one instance (one Redis connection pool) serves concurrent tasks."""

    def __init__(self, config: Any = None, *, redis_url: str | None = None) -> None:
        self.config = config
        self.redis_url = (
            redis_url
            or getattr(config, "redis_url", None)
            or os.environ.get("FORMICARY_MESSAGING_REDIS_URL")
            or os.environ.get("REDIS_URL")
            or None
        )
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        url = self.redis_url
        assert url, "execute answers a missing redis_url before connecting"
        with self._lock:
            if self._client is None:
                self._client = redis.Redis.from_url(
                    url, socket_timeout=POLL_SECS + 10, socket_connect_timeout=10,
                    health_check_interval=30,
                )  # fmt: skip
            return self._client

    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult:
        spec = req.spec
        request_queue = as_str(spec.get("messaging_request_queue")).strip()
        reply_queue = as_str(spec.get("messaging_reply_queue")).strip()
        for name, value in (
            ("messaging_request_queue", request_queue),
            ("messaging_reply_queue", reply_queue),
        ):
            if not value or len(value) > MAX_QUEUE_NAME:
                msg = (
                    f"task {req.task_type}: MESSAGING needs {name} (a queue name of 1-{MAX_QUEUE_NAME} chars)"
                )
                return _failed(ERR_VALIDATION, msg)
        if not self.redis_url:
            msg = (
                "method MESSAGING needs Redis and this ant has none (standalone mode): set REDIS_URL "
                "(or redis_url in the ant config) on an ant with --methods MESSAGING"
            )
            ctx.log("system", msg)
            return _failed(ERR_MESSAGING_UNAVAILABLE, msg)
        redact = Redactor.for_request(req)
        timeout = req.timeout_secs or DEFAULT_TIMEOUT_SECS
        deadline = ctx.deadline if ctx.deadline is not None else time.monotonic() + timeout
        deadline_epoch = time.time() + max(0.0, deadline - time.monotonic())
        reply_to = reply_key(reply_queue, req.task_execution_id, req.attempt)
        try:
            r = self.client()
            raw = r.lpop(reply_to)  # a re-run of the attempt (ant restart): the reply may be there
            if raw is None:
                r.rpush(
                    request_queue, json.dumps(request_message(req, reply_to, deadline_epoch), default=str)
                )
                ctx.log("system", f"request sent to {request_queue}; waiting for the reply on {reply_to}")
            while raw is None:
                if ctx.cancel_event.is_set():
                    self._cancel(r, reply_to, "cancelled")
                    return ExecutionResult(status=STATUS_CANCELLED, exit_message="task cancelled")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._cancel(r, reply_to, "timeout")
                    msg = f"no reply on {reply_to} within {timeout:g}s"
                    ctx.log("system", msg)
                    return _failed(ERR_TASK_TIMEOUT, msg)
                popped = r.blpop([reply_to], timeout=max(0.01, min(POLL_SECS, remaining)))
                if popped is not None:
                    raw = popped[1]
        except redis.exceptions.RedisError as exc:  # connection refused, timeouts, ...
            msg = f"Redis at the MESSAGING queue failed: {type(exc).__name__}: {exc}"
            ctx.log("system", msg)
            return _failed(ERR_MESSAGING_REDIS, msg)
        return self._result(req, ctx, raw, reply_to, redact)

    def _cancel(self, r: Any, reply_to: str, reason: str) -> None:
        try:
            r.set(f"{reply_to}:cancel", reason, ex=REPLY_KEY_TTL_SECS)
        except Exception:
            logger.debug("cancel marker for %s not set", reply_to, exc_info=True)

    def _result(
        self, req: TaskRequest, ctx: ExecutionContext, raw: bytes | str, reply_to: str, redact: Redactor
    ) -> ExecutionResult:
        try:
            reply = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._bad_reply(ctx, f"reply on {reply_to} is not valid JSON: {exc}")
        if not isinstance(reply, dict):
            return self._bad_reply(ctx, f"reply on {reply_to} must be a JSON object")
        for name, want in (("task_execution_id", req.task_execution_id), ("attempt", req.attempt)):
            if name in reply and reply[name] != want:
                return self._bad_reply(
                    ctx, f"reply on {reply_to}: {name} is {reply[name]!r}, expected {want}"
                )
        answer, problem = parse_answer(reply)
        if problem is not None:
            return self._bad_reply(ctx, f"reply on {reply_to}: {problem}")
        return result_from_answer(answer, redact, ctx.log, "messaging worker")

    def _bad_reply(self, ctx: ExecutionContext, msg: str) -> ExecutionResult:
        ctx.log("system", msg)
        return _failed(ERR_MESSAGING_REPLY, msg)


def _failed(error_code: str, message: str) -> ExecutionResult:
    return ExecutionResult(status=STATUS_FAILED, exit_message=message, error_code=error_code,
                           error_message=message)  # fmt: skip


__all__ = ["FORMAT", "MessagingExecutor", "reply_key", "request_message"]
