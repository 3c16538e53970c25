"""Where outbound work runs: a Celery worker through the broker, or (standalone, no broker) a
small in-process thread pool.

Celery's eager mode would run an HTTP call inside the caller, the queen's loop; the pool keeps it
off. Both paths run the same task bodies (``jobs/tasks.py``), named by their Celery name, and a
retry is the same call enqueued again with ``attempt + 1`` after a backoff.
"""

from __future__ import annotations

import importlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

log = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def enqueue(name: str, countdown: float = 0, **kwargs: Any) -> None:
    """Run the Celery task ``name`` (``module.function``) with ``kwargs``, ``countdown`` seconds from now."""
    if settings.FORMICARY_OUTBOUND_IN_PROCESS:
        if countdown > 0:
            timer = threading.Timer(countdown, _submit, (name, kwargs))
            timer.daemon = True
            timer.start()
        else:
            _submit(name, kwargs)
        return
    from formicary_site.celery import app

    app.send_task(name, kwargs=kwargs, countdown=countdown or None)


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: doubling from FORMICARY_OUTBOUND_RETRY_SECS, at most 10 min."""
    return min(settings.FORMICARY_OUTBOUND_RETRY_SECS * 2 ** (attempt - 1), 600.0)


def _submit(name: str, kwargs: dict[str, Any]) -> None:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbound")
    _pool.submit(_run, name, kwargs)


def _run(name: str, kwargs: dict[str, Any]) -> None:
    module, _, function = name.rpartition(".")
    try:
        close_old_connections()
        getattr(importlib.import_module(module), function).run(**kwargs)
    except Exception:
        log.exception("outbound task %s(%s) failed", name, kwargs)
    finally:
        connection.close()  # a pool thread must not keep a connection open between jobs
