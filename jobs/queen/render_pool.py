"""Definitions rendered off the queen's loop, so one organization's heavy templates cannot delay
another organization's jobs.

The queen renders a definition in its loop only within ``FAST_STEPS`` template steps (a few
milliseconds; the reference's definitions take under a hundred). A render that needs more goes
to a worker process (its own interpreter: no share of the loop's GIL) with the full budget of
``jobs.definition.template``; the request or task waits, the queen is woken when the render is
done and uses its result on a later pass. Results stay a while under their key (the request's
start, the task's attempt), so a retried pass finds them; a render that does not end within
``timeout_secs`` fails with that said.

This module imports nothing of Django: the worker process imports it to render.
"""

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from jobs.definition.errors import DefinitionError, DefinitionLimitError, Problem, TemplateError
from jobs.definition.model import JobSpec
from jobs.definition.template import budget
from jobs.domain.specs import rendered_for_task

log = logging.getLogger(__name__)

FAST_STEPS = 2_000  # about 4 ms of rendering, in the loop
KEEP_SECS = 120.0  # how long a finished render waits for the pass that asked for it


def render_outcome(raw_yaml: str, data: dict[str, Any], task_type: str | None = None) -> tuple[bool, Any]:
    """In the worker: (True, spec) or (False, the error's text); exceptions with custom
    constructors do not cross processes, plain values do."""
    try:
        return True, rendered_for_task(raw_yaml, data, task_type)
    except (DefinitionError, TemplateError) as exc:
        return False, str(exc)


def process_pool() -> Executor:
    # spawn: a fresh interpreter, not a fork of the queen's threads and database connections
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


class RenderPool:
    def __init__(
        self,
        wake: Callable[[], None],
        *,
        timeout_secs: float = 30.0,
        executor_factory: Callable[[], Executor] = process_pool,
    ) -> None:
        self._wake = wake
        self.timeout_secs = timeout_secs
        self._executor_factory = executor_factory
        self._executor: Executor | None = None
        self._lock = threading.Lock()
        # key -> (the render, when it was sent, when it was seen done)
        self._renders: dict[Hashable, tuple[Future, float, float | None]] = {}
        self.sent = 0  # renders sent to the worker (for tests and logs)

    def render(
        self, key: Hashable, raw_yaml: str, data: dict[str, Any], task_type: str | None = None
    ) -> JobSpec | None:
        """The rendered spec (as ``task_type`` sees it, when given), or None while the worker
        renders it (ask again with the same key). Raises DefinitionError when the definition
        does not render, the worker's verdict included."""
        held = self._renders.get(key)
        if held is not None:
            return self._result(key, *held)
        try:
            with budget(FAST_STEPS):
                return rendered_for_task(raw_yaml, data, task_type)
        except DefinitionLimitError as exc:
            if exc.limit != "max_steps":
                raise  # output too large or too deep: more steps will not help
        self._send(key, raw_yaml, data, task_type)
        return None

    def pending(self) -> int:
        return sum(1 for future, _, _ in self._renders.values() if not future.done())

    def _send(self, key: Hashable, raw_yaml: str, data: dict[str, Any], task_type: str | None) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = self._executor_factory()
            future = self._executor.submit(render_outcome, raw_yaml, data, task_type)
        future.add_done_callback(lambda _: self._wake())
        self._renders[key] = (future, time.monotonic(), None)
        self.sent += 1
        self._forget_old()

    def _result(self, key: Hashable, future: Future, sent_at: float, done_at: float | None) -> JobSpec | None:
        now = time.monotonic()
        if not future.done():
            if now - sent_at <= self.timeout_secs:
                return None
            future.cancel()
            self._renders[key] = (
                _failed(f"rendering took longer than {self.timeout_secs:g} s"),
                sent_at,
                now,
            )
            return self._result(key, *self._renders[key])
        if done_at is None:
            self._renders[key] = (future, sent_at, now)
        try:
            ok, value = future.result()
        except BrokenProcessPool:
            self._restart()
            raise DefinitionError(
                [Problem("the render worker stopped; the definition could not be rendered")]
            ) from None
        if ok:
            return value  # type: ignore[no-any-return]
        raise DefinitionError([Problem(value)])

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key, (_, sent_at, done_at) in list(self._renders.items()):
            # seen long ago, or never asked for again (the request was cancelled meanwhile)
            if (
                done_at is not None and now - done_at > KEEP_SECS
            ) or now - sent_at > self.timeout_secs + KEEP_SECS:
                self._renders.pop(key, None)

    def _restart(self) -> None:
        with self._lock:
            broken, self._executor = self._executor, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _failed(message: str) -> Future:
    future: Future = Future()
    future.set_result((False, message))
    return future
