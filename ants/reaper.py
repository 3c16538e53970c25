"""Reaping what tasks leave behind.

A command that starts a background process and exits (``nohup server &``, a daemon's double
fork) orphans it. The kernel gives an orphan to the nearest "child subreaper" above it, or to
PID 1; when it exits, that parent must wait for it or it stays a zombie, holding a process-table
slot for good. An ant is often PID 1 of its container (docker without ``--init``), or runs
where PID 1 does not reap, so ``manage.py ant`` and ``standalone`` make their process a
subreaper and wait for the orphans it is given (``reap``, from the ant's background thread).

It must never wait for a child someone else in the process waits for: ``subprocess`` would then
see ECHILD and report exit status 0. The children the process starts itself (a render worker,
``dot``) stay in its own session and are left alone. A task's shell leads a session of its own:
it is registered from its fork until its ``Popen`` has waited for it, and no scan runs while a
shell is being started (``spawning``). Every other child in another session is
an orphan: what a task left, in the task's session or in one it started. So whatever else this
process starts in a session of its own must be registered the same way. Linux only; elsewhere
nothing happens.
"""

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h

_lock = threading.Lock()
_owned: set[int] = set()  # task shells between their fork and their Popen's wait
_starting = 0  # task shells being started (forked, maybe not yet in _owned)
_enabled = False


def enable() -> bool:
    """Make this process a child subreaper (idempotent); False where the kernel cannot."""
    global _enabled
    with _lock:
        _enabled = _set_subreaper(1)
        if not _enabled:
            log.info("this system has no child subreapers: orphans of tasks go to PID 1")
        return _enabled


def disable() -> None:
    """No longer a subreaper: orphans go to PID 1 again, and ``reap`` waits for none."""
    global _enabled
    with _lock:
        _set_subreaper(0)
        _enabled = False


def _set_subreaper(on: int) -> bool:
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Hold while starting a task's shell and registering it (``task_started``). Shells start
    side by side; a scan waits for none of them and is skipped while any is starting."""
    global _starting
    with _lock:
        _starting += 1
    try:
        yield
    finally:
        with _lock:
            _starting -= 1


def task_started(pid: int) -> None:
    """``pid`` is a task's shell in a session of its own, waited for by its ``Popen`` (call
    inside ``spawning``)."""
    with _lock:
        _owned.add(pid)


def disown(pid: int) -> None:
    """Its ``Popen`` has waited for it."""
    with _lock:
        _owned.discard(pid)


def _children() -> set[int]:
    """This process's children, from every thread's list (an orphan is given to one of them)."""
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def reap() -> int:
    """Wait for the orphans that have exited; returns how many."""
    if not _enabled:
        return 0
    own_session, reaped = os.getsid(0), 0
    with _lock:
        if _starting:
            return 0  # a shell may be forked and not yet registered: the next scan
        for pid in _children() - _owned:
            # WNOHANG: a child still running is left for a later scan
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                if os.getsid(pid) != own_session and os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
    return reaped
