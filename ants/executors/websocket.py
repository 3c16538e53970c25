"""WEBSOCKET executor: a task is forwarded to a websocket client (a browser, a script) and finished
by its answer.

One ``WebsocketExecutor`` serves one open socket (see ``ants/web/consumers.py``, which runs an
``AntWorker`` per connection with this executor for method WEBSOCKET). The worker thread calls
``execute``: the request goes to the client as ``{"type": "task", ...TaskRequest fields}`` and the
thread waits until

- the client answers ``{"task_execution_id", "attempt", "status": "COMPLETED"|"FAILED",
  "exit_code", "exit_message", "error_code", "error_message", "task_context", "job_context",
  "stdout"}`` (``deliver``) -> the task ends with that result;
- the task is cancelled -> ``{"type": "cancel", ...}`` goes to the client, the task is CANCELLED;
- its timeout passes -> ``{"type": "cancel", "reason": "timeout"}``, FAILED ``ERR_TASK_TIMEOUT``;
- the socket closes (``close``) -> FAILED ``ERR_ANT_DISCONNECTED`` (the task's ``retry`` decides
  whether it runs again, possibly on another ant).

Log lines may be sent while a task runs: ``{"type": "log", "task_execution_id", "attempt",
"lines": [...]}``. Everything the client sends is validated; ``deliver``/``deliver_log`` return
an error text for the client instead of raising.

A plain ant (``manage.py ant --methods WEBSOCKET``) has no socket: the registry's
``WebsocketExecutor(config)`` fails such tasks with a message saying where they can run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ants.executors.base import (
    ERR_TASK_TIMEOUT,
    ExecutionContext,
    ExecutionResult,
    Redactor,
    clip,
    result_from_answer,
)
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

logger = logging.getLogger(__name__)

ERR_ANT_DISCONNECTED = "ERR_ANT_DISCONNECTED"
ERR_WEBSOCKET_UNAVAILABLE = "ERR_WEBSOCKET_UNAVAILABLE"
ERR_WRONG_ORGANIZATION = "ERR_WRONG_ORGANIZATION"
ANSWER_STATUSES = (STATUS_COMPLETED, STATUS_FAILED)
TICK_SECS = 0.1
MAX_LOG_LINES_PER_MESSAGE = 1000

Key = tuple[int, int]


@dataclass
class _Pending:
    req: TaskRequest
    ctx: ExecutionContext
    redact: Redactor
    event: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None


class WebsocketExecutor:
    """Runs WEBSOCKET tasks on one connected client.

    ``send(message)`` must deliver one JSON-able dict to the client (thread-safe; it raises when
    the socket is gone). ``organization_id`` (when set) is checked against every request: a task
    of another organization is refused without reaching the client.
    """

    def __init__(
        self, config: Any = None, *, send: Callable[[dict[str, Any]], None] | None = None,
        organization_id: str = "",
    ) -> None:  # fmt: skip
        self.config = config
        self._send = send
        self.organization_id = organization_id or str(getattr(config, "organization_id", "") or "")
        self._lock = threading.Lock()
        self._pending: dict[Key, _Pending] = {}
        self._closed: str | None = None if send is not None else "no websocket client"

    # -- worker side ---------------------------------------------------------------------------
    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult:
        if self._send is None:
            msg = (
                "WEBSOCKET tasks run only on websocket ants (clients connected to the web server at "
                "ws/ants), not on this ant"
            )
            return _failed(ERR_WEBSOCKET_UNAVAILABLE, msg)
        if self.organization_id and req.organization_id != self.organization_id:
            # The queen never routes here (defense in depth): the client must not see it.
            logger.error("websocket ant of org %s refused a task of org %r", self.organization_id,
                         req.organization_id)  # fmt: skip
            return _failed(ERR_WRONG_ORGANIZATION, "task belongs to another organization")
        pending = _Pending(req=req, ctx=ctx, redact=Redactor.for_request(req))
        with self._lock:
            if self._closed is not None:
                return _disconnected(self._closed)
            self._pending[req.key] = pending
        try:
            try:
                self._send({"type": "task", **req.to_dict()})
            except Exception as exc:
                return _disconnected(f"sending the task failed: {exc}")
            while True:
                remaining = ctx.remaining()
                pending.event.wait(TICK_SECS if remaining is None else max(0.0, min(TICK_SECS, remaining)))
                if pending.answer is not None:
                    return self._result(pending)
                with self._lock:
                    closed = self._closed
                if closed is not None:
                    return _disconnected(closed)
                if ctx.cancel_event.is_set():
                    self._notify_cancel(req, "cancelled")
                    return ExecutionResult(status=STATUS_CANCELLED, exit_message="task cancelled")
                remaining = ctx.remaining()
                if remaining is not None and remaining <= 0:
                    self._notify_cancel(req, "timeout")
                    msg = f"no answer from the websocket client within {req.timeout_secs:g}s"
                    return _failed(ERR_TASK_TIMEOUT, msg)
        finally:
            with self._lock:
                self._pending.pop(req.key, None)

    def _notify_cancel(self, req: TaskRequest, reason: str) -> None:
        if self._send is None:
            return
        try:
            self._send({
                "type": "cancel", "action": "CANCEL", "task_execution_id": req.task_execution_id,
                "attempt": req.attempt, "job_request_id": req.job_request_id, "task_type": req.task_type,
                "reason": reason,
            })  # fmt: skip
        except Exception:
            logger.debug("cancel notice not sent", exc_info=True)

    def _result(self, pending: _Pending) -> ExecutionResult:
        answer = pending.answer or {}
        redact = pending.redact
        return result_from_answer(answer, redact, pending.ctx.log, "websocket client")

    # -- socket side ---------------------------------------------------------------------------
    def close(self, reason: str = "websocket closed") -> None:
        """The socket is gone: every waiting task fails with ERR_ANT_DISCONNECTED."""
        with self._lock:
            if self._closed is None:
                self._closed = reason
            pending = list(self._pending.values())
        for p in pending:
            p.event.set()

    def running(self) -> list[Key]:
        with self._lock:
            return list(self._pending)

    def _find(self, message: dict[str, Any]) -> tuple[_Pending | None, str | None]:
        task_id = message.get("task_execution_id")
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            return None, "task_execution_id: expected an integer"
        attempt = message.get("attempt")
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
            return None, "attempt: expected an integer"
        with self._lock:
            if attempt is None:
                matches = [p for (tid, _), p in self._pending.items() if tid == task_id]
                found = matches[0] if len(matches) == 1 else None
            else:
                found = self._pending.get((task_id, attempt))
        if found is None:
            which = f"{task_id}" + (f" attempt {attempt}" if attempt is not None else "")
            return None, f"task_execution_id: no running task {which} on this ant"
        return found, None

    def deliver(self, message: dict[str, Any]) -> str | None:
        """A client's answer; None when accepted, else the problem (for an error message)."""
        answer, problem = parse_answer(message)
        if problem is not None:
            return problem
        pending, problem = self._find(message)
        if pending is None:
            return problem
        if pending.answer is not None:
            return f"task_execution_id: task {pending.req.task_execution_id} was already answered"
        pending.answer = answer
        pending.event.set()
        return None

    def deliver_log(self, message: dict[str, Any]) -> str | None:
        """``{"type": "log", "task_execution_id", "attempt", "lines": [...]}`` (or ``"line"``)."""
        lines = message.get("lines", [message["line"]] if "line" in message else None)
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            return "lines: expected a list of strings"
        if len(lines) > MAX_LOG_LINES_PER_MESSAGE:
            return f"lines: at most {MAX_LOG_LINES_PER_MESSAGE} lines per message"
        stream = message.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            return "stream: expected 'stdout' or 'stderr'"
        pending, problem = self._find(message)
        if pending is None:
            return problem
        for line in lines:
            for part in line.splitlines() or [""]:
                pending.ctx.log(stream, clip(pending.redact(part)))
        return None


def parse_answer(message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Validate a client's answer; returns the normalised fields or the first problem."""
    status = message.get("status")
    if status not in ANSWER_STATUSES:
        return {}, f"status: expected one of {', '.join(ANSWER_STATUSES)}, got {status!r}"
    out: dict[str, Any] = {"status": status}
    exit_code = message.get("exit_code")
    if exit_code is not None:
        if isinstance(exit_code, bool) or not isinstance(exit_code, str | int):
            return {}, "exit_code: expected a string or an integer"
        out["exit_code"] = str(exit_code)
    for name in ("exit_message", "error_code", "error_message"):
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return {}, f"{name}: expected a string"
        out[name] = value
    for name in ("task_context", "job_context"):
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            return {}, f"{name}: expected an object"
        out[name] = value
    stdout = message.get("stdout")
    if stdout is not None:
        if not isinstance(stdout, list) or not all(isinstance(x, str) for x in stdout):
            return {}, "stdout: expected a list of strings"
        out["stdout"] = stdout
    return out, None


def _failed(error_code: str, message: str) -> ExecutionResult:
    return ExecutionResult(status=STATUS_FAILED, exit_message=message, error_code=error_code,
                           error_message=message)  # fmt: skip


def _disconnected(reason: str) -> ExecutionResult:
    return _failed(ERR_ANT_DISCONNECTED, f"websocket ant disconnected: {reason}")


__all__ = ["ERR_ANT_DISCONNECTED", "WebsocketExecutor", "parse_answer"]
