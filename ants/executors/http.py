"""HTTP executors: HTTP_GET, HTTP_POST_FORM, HTTP_POST_JSON, HTTP_PUT_FORM, HTTP_PUT_JSON, HTTP_DELETE.

- URL: ``spec["url"]``, else the first ``script`` line (as in the reference). http/https only.
- ``headers`` (dict) are sent as given; ``query`` (dict) becomes the query string.
- Body: ``spec["body"]`` when given, else the task's ``variables`` (the spec's, as in the
  reference: values as strings), form-encoded for ``*_FORM``, JSON for ``*_JSON`` and DELETE
  (DELETE sends a body only when there is one). GET sends none.
- The status code is the exit code (a string); 2xx -> COMPLETED, anything else FAILED.
- The body (capped at 1 MiB) is logged line by line (secrets redacted), its tail is the
  response's ``stdout``, and its text (capped at 64 KiB) is ``task_context["response"]``.
- Timeout and cancel abort the request at once (it runs on a helper thread; the session is
  closed and the thread left to die with its socket).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urlparse

import requests

from ants.executors.base import (
    ERR_EXECUTOR,
    ERR_TASK_TIMEOUT,
    ERR_VALIDATION,
    STDOUT_TAIL_LINES,
    ExecutionContext,
    ExecutionResult,
    Redactor,
    as_dict,
    as_list,
    as_str,
    clip,
)
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

# method -> (HTTP verb, body encoding)
HTTP_METHODS: dict[str, tuple[str, str | None]] = {
    "HTTP_GET": ("GET", None),
    "HTTP_POST_FORM": ("POST", "form"),
    "HTTP_POST_JSON": ("POST", "json"),
    "HTTP_PUT_FORM": ("PUT", "form"),
    "HTTP_PUT_JSON": ("PUT", "json"),
    "HTTP_DELETE": ("DELETE", "json"),
}
MAX_BODY_BYTES = 1024 * 1024
MAX_CONTEXT_CHARS = 64 * 1024
MAX_LOGGED_LINES = 1000
DEFAULT_TIMEOUT_SECS = 300.0
ERR_HTTP_REQUEST = "ERR_HTTP_REQUEST"
TICK_SECS = 0.05


class HttpExecutor:
    """Runs HTTP_* tasks with ``requests``; one instance serves concurrent tasks."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult:
        redact = Redactor.for_request(req)
        spec = req.spec
        method = req.method.upper()
        verb, encoding = HTTP_METHODS.get(method, (None, None))
        url = as_str(spec.get("url") or next(iter(as_list(spec.get("script"))), "")).strip()
        if verb is None or urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
            msg = f"unsupported method {method!r}" if verb is None else f"invalid url {redact(url)!r}"
            ctx.log("system", msg)
            return ExecutionResult(
                status=STATUS_FAILED, exit_message=msg, error_code=ERR_VALIDATION, error_message=msg
            )

        headers = {str(k): as_str(v) for k, v in as_dict(spec.get("headers")).items()}
        params = {str(k): as_str(v) for k, v in as_dict(spec.get("query")).items()}
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        body = (
            spec["body"]
            if "body" in spec
            else {str(k): as_str(v) for k, v in as_dict(spec.get("variables")).items()}
        )
        if encoding == "form":
            kwargs["data"] = (
                {str(k): as_str(v) for k, v in as_dict(body).items()}
                if isinstance(body, dict)
                else as_str(body)
            )
        elif encoding == "json" and (body or method != "HTTP_DELETE"):
            kwargs["json"] = body

        deadline = ctx.deadline
        if req.timeout_secs is not None and req.timeout_secs > 0:
            own = time.monotonic() + req.timeout_secs
            deadline = own if deadline is None else min(deadline, own)
        timeout = DEFAULT_TIMEOUT_SECS if deadline is None else max(0.001, deadline - time.monotonic())
        kwargs["timeout"] = timeout

        ctx.log("system", redact(f"{verb} {url}"))
        session = requests.Session()
        box: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                resp = session.request(verb, url, stream=True, **kwargs)
                chunks, size = [], 0
                for chunk in resp.iter_content(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= MAX_BODY_BYTES:
                        box["truncated"] = True
                        break
                resp.close()
                box["resp"], box["body"] = resp, b"".join(chunks)[:MAX_BODY_BYTES]
            except BaseException as exc:  # reported to the executing thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, name=f"http-{req.task_execution_id}", daemon=True).start()
        # done.wait returns at once when the request ends; the tick only bounds cancel latency.
        while not done.wait(TICK_SECS):
            if ctx.cancel_event.is_set():
                session.close()
                ctx.log("system", "task cancelled")
                return ExecutionResult(status=STATUS_CANCELLED, exit_message="task cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                session.close()
                return self._timeout(ctx, req)
        session.close()

        error = box.get("error")
        if error is not None:
            if isinstance(error, requests.Timeout):
                return self._timeout(ctx, req)
            msg = redact(f"request failed: {error}")
            ctx.log("system", msg)
            code = ERR_HTTP_REQUEST if isinstance(error, requests.RequestException) else ERR_EXECUTOR
            return ExecutionResult(status=STATUS_FAILED, exit_message=msg, error_code=code, error_message=msg)

        resp: requests.Response = box["resp"]
        text = box["body"].decode(resp.encoding or "utf-8", "replace")
        tail: deque[str] = deque(maxlen=STDOUT_TAIL_LINES)
        for n, line in enumerate(text.splitlines()):
            shown = clip(redact(line))
            tail.append(shown)
            if n < MAX_LOGGED_LINES:
                ctx.log("stdout", shown)
        warnings = ["response body truncated at 1 MiB"] if box.get("truncated") else []
        ok = 200 <= resp.status_code < 300
        msg = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
        ctx.log("system", msg)
        return ExecutionResult(
            status=STATUS_COMPLETED if ok else STATUS_FAILED,
            exit_code=str(resp.status_code),
            exit_message=msg,
            error_message="" if ok else msg,
            failed_command="" if ok else redact(f"{verb} {url}"),
            task_context={"response": text[:MAX_CONTEXT_CHARS]},
            stdout=list(tail),
            warnings=warnings,
        )

    @staticmethod
    def _timeout(ctx: ExecutionContext, req: TaskRequest) -> ExecutionResult:
        msg = f"task timed out after {req.timeout_secs:g}s" if req.timeout_secs else "task timed out"
        ctx.log("system", msg)
        return ExecutionResult(
            status=STATUS_FAILED, exit_message=msg, error_code=ERR_TASK_TIMEOUT, error_message=msg
        )
