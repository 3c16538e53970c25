#!/usr/bin/env python
"""A small custom worker for MESSAGING tasks (see docs/messaging.md). Needs only ``redis``.

It takes requests from a Redis list with BLPOP and pushes one reply per request onto the
request's ``reply_to`` key. What it does: it "greets" (``Greeting`` = ``hello <Name>``, from
the task's variables), echoes the variables it was given into the task context, and fails
with exit code 1 when the variable ``Fail`` is ``true``. Replace ``handle`` with real work.

    python examples/messaging_worker.py --redis-url redis://localhost:6379/0 \\
        --queue formicary-message-ant-request

A job to try it with::

    job_type: messaging-job
    tasks:
    - task_type: greet
      method: MESSAGING
      messaging_request_queue: formicary-message-ant-request
      messaging_reply_queue: formicary-message-ant-response
      timeout: 1m
      variables:
        Name: ants
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, cast

import redis

FORMAT = "formicary.messaging/1"
REPLY_TTL_SECS = 24 * 3600  # a reply nobody collects (the task was cancelled) goes away
POLL_SECS = 1.0

log = logging.getLogger("messaging_worker")


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """The work: return the reply fields (status, exit_code, task_context, stdout, ...)."""
    variables = {**request.get("variables", {}), **(request.get("spec", {}).get("variables") or {})}
    name = str(variables.get("Name", "world"))
    if str(variables.get("Fail", "")).lower() == "true":
        return {
            "status": "FAILED", "exit_code": "1", "error_code": "ERR_WORKER",
            "error_message": f"asked to fail task {request['task_type']}",
            "stdout": [f"failing {request['task_type']} as asked"],
        }  # fmt: skip
    return {
        "status": "COMPLETED",
        "exit_code": "0",
        "task_context": {"Greeting": f"hello {name}", "WorkerPid": str(os.getpid())},
        "stdout": [f"hello {name} from task {request['task_type']} (request {request['job_request_id']})"],
    }


def reply_for(request: dict[str, Any]) -> dict[str, Any]:
    try:
        fields = handle(request)
    except Exception as exc:  # a bug in the work fails the task, it does not stop the worker
        log.exception("task %s failed", request.get("task_execution_id"))
        fields = {
            "status": "FAILED",
            "error_code": "ERR_WORKER",
            "error_message": f"{type(exc).__name__}: {exc}",
        }
    return {"task_execution_id": request["task_execution_id"], "attempt": request["attempt"], **fields}


def serve(
    client: redis.Redis, queue: str, max_messages: int | None = None, stop: threading.Event | None = None
) -> int:
    """Answer requests until ``stop`` is set (or ``max_messages`` were handled); returns how many."""
    handled = 0
    stop = stop or threading.Event()
    while not stop.is_set() and (max_messages is None or handled < max_messages):
        # redis-py's types give a sync client's reply the async one's type too
        popped = cast("list[Any] | None", client.blpop([queue], timeout=POLL_SECS))
        if popped is None:
            continue
        try:
            request = json.loads(popped[1])
            if not isinstance(request, dict) or request.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} request")
            reply_to = request["reply_to"]
            if request.get("action", "EXECUTE") != "EXECUTE":
                continue
            if client.exists(f"{reply_to}:cancel"):
                continue  # cancelled or timed out before we got to it
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a malformed request on %s: %s", queue, exc)
            continue
        log.info(
            "task %s attempt %s (%s)", request["task_execution_id"], request["attempt"], request["task_type"]
        )
        pipe = client.pipeline()
        pipe.rpush(reply_to, json.dumps(reply_for(request)))
        pipe.expire(reply_to, REPLY_TTL_SECS)
        pipe.execute()
        handled += 1
    return handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    parser.add_argument(
        "--queue", default="formicary-message-ant-request", help="the messaging_request_queue"
    )
    parser.add_argument("--max-messages", type=int, default=None, help="exit after this many requests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = redis.Redis.from_url(args.redis_url, socket_timeout=POLL_SECS + 10)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    log.info("listening on %s at %s", args.queue, args.redis_url)
    with contextlib.suppress(KeyboardInterrupt):
        serve(client, args.queue, args.max_messages, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
