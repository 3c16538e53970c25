"""SHELL executor: runs a task's commands with ``/bin/sh -c`` on the ant's host.

Order and outcome (GitLab CI semantics):

- ``before_script`` then ``script``; the first command that exits non-zero stops the task:
  FAILED, ``exit_code`` is its exit status (128+N when killed by signal N), ``failed_command`` its
  text. Success: COMPLETED, ``exit_code`` ``"0"``.
- ``after_script`` always runs afterwards, on success, failure and timeout, but not after a
  cancel. It gets its own time budget (``after_script_timeout_secs`` in the spec, default 300)
  and its failure never changes the task's outcome (it becomes a warning).
- Timeout (``timeout_secs`` or the context deadline, whichever is first) and cancel kill the
  command's whole process group (each command runs in its own session): SIGTERM, then SIGKILL
  after 2 s. Timeout -> FAILED with ``error_code`` ERR_TASK_TIMEOUT; cancel -> CANCELLED.
  Background processes a command leaves behind are killed when the task ends.

Environment: a minimal base (PATH, HOME, LANG, SHELL), then the request's ``variables``, the
spec's ``variables`` and the spec's ``environment`` (later wins; names that are not valid shell
identifiers are skipped), then ``FORMICARY_*`` values: TASK_EXECUTION_ID, ATTEMPT,
JOB_REQUEST_ID, JOB_EXECUTION_ID, JOB_TYPE, TASK_TYPE, WORKDIR and CONTEXT_FILE.

User (ants/executors/isolation.py, docs/security.md): an ant running as root runs each task as
uid/gid ``200000 + organization id`` with ``HOME`` its working directory (given to that user,
mode 0700); on a shared ant SHELL is refused unless ``FORMICARY_ANT_SHARED_SHELL`` allows it.

Working directory: ``ctx.workdir``, or ``working_dir`` from the spec taken relative to it (an
absolute path is re-rooted under it); a path escaping the workdir fails the task.

Output: stdout and stderr are streamed line by line as printed, each line marked with its
stream (the UI styles stderr apart; lines of the two streams keep the order they were read in); values of secret variables (``secret_names`` and names containing SECRET,
PASSWORD, TOKEN or ACCESS_KEY) are replaced with ``****`` in logs, the stdout tail and
``failed_command``.

Exporting task context (what later tasks see as the job context), two ways:

1. dotenv file: write ``KEY=VALUE`` lines to the file named by ``$FORMICARY_CONTEXT_FILE``
   (blank lines and ``#`` comments ignored, ``export`` prefix and surrounding quotes allowed),
   like GitLab's dotenv reports: ``echo "VERSION=1.2" >> "$FORMICARY_CONTEXT_FILE"``.
2. a marker line on stdout: ``##formicary:context KEY=VALUE``, or the reference's
   ``::add-task-context KEY::VALUE``; ``::add-job-context KEY::VALUE`` sets the job context.

Both are read after the last command (also when the task failed, not when cancelled); the file
wins over markers for the same key.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ants import reaper
from ants.executors.base import (
    ENV_NAME_RE,
    ERR_EXECUTOR,
    ERR_TASK_TIMEOUT,
    ERR_VALIDATION,
    MAX_LINE_CHARS,
    ExecutionContext,
    ExecutionResult,
    OutputSink,
    as_list,
    as_str,
    task_variables,
)
from ants.executors.isolation import TaskUser, give_workdir, read_task_file, shell_refusal, task_user
from ants.protocol import STATUS_CANCELLED, STATUS_COMPLETED, STATUS_FAILED, TaskRequest

CONTEXT_FILE_NAME = ".formicary-context.env"
# How often the read loop re-checks cancel/deadline when no output arrives. It adds no latency
# to normal runs: select() returns at once on output or end of file.
TICK_SECS = 0.05
# A command's shell exited but a background child still holds the pipe: stop reading after this.
ORPHAN_GRACE_SECS = 0.2
DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS = 300.0


@dataclass
class _Outcome:
    returncode: int
    timed_out: bool = False
    cancelled: bool = False


def exit_status(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def parse_dotenv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not ENV_NAME_RE.match(key):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def resolve_working_dir(workdir: Path, working_dir: Any) -> Path:
    """``working_dir`` under ``workdir``; raises ValueError when it would escape it."""
    root = workdir.resolve()
    if not working_dir:
        return root
    rel = Path(as_str(working_dir))
    if rel.is_absolute():
        rel = rel.relative_to(rel.anchor)
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"working_dir {as_str(working_dir)!r} escapes the task's work directory")
    return target


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, sig)


class ShellExecutor:
    """Runs SHELL tasks. Stateless, so one instance serves concurrent tasks."""

    def __init__(
        self,
        config: Any = None,
        kill_grace_secs: float = 2.0,
        single_tenant: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.kill_grace_secs = kill_grace_secs
        # standalone: whether the install has one organization (SHELL is then allowed on its ant)
        self.single_tenant = single_tenant

    # -- entry point ---------------------------------------------------------------------------
    def execute(self, req: TaskRequest, ctx: ExecutionContext) -> ExecutionResult:
        sink = OutputSink(req, ctx.log)
        redact, tail, markers, emit = sink.redact, sink.tail, sink.markers, sink.emit

        spec = req.spec
        if refusal := shell_refusal(req, self.config, self.single_tenant):
            emit("system", refusal)
            return ExecutionResult(
                status=STATUS_FAILED, exit_message=refusal, error_code=ERR_VALIDATION, error_message=refusal
            )
        user = task_user(req)  # None: this ant cannot switch users (docs/security.md)
        try:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            root = ctx.workdir.resolve()  # once: each resolve is a system call per path part
            cwd = root
            if spec.get("working_dir"):
                cwd = resolve_working_dir(root, spec.get("working_dir"))
                cwd.mkdir(parents=True, exist_ok=True)
            context_file = root / CONTEXT_FILE_NAME
            context_file.unlink(missing_ok=True)  # a kept workdir must not leak an old context
            if user is not None:
                give_workdir(root, user)
        except (ValueError, OSError) as exc:
            msg = str(exc)
            emit("system", msg)
            return ExecutionResult(
                status=STATUS_FAILED, exit_message=msg, error_code=ERR_VALIDATION, error_message=msg
            )
        env = self._environment(req, root, context_file, user)

        deadline = ctx.deadline
        if req.timeout_secs is not None and req.timeout_secs > 0:
            own = time.monotonic() + req.timeout_secs
            deadline = own if deadline is None else min(deadline, own)

        result = ExecutionResult(status=STATUS_COMPLETED, exit_code="0")
        pgids: list[int] = []
        try:
            for cmd in as_list(spec.get("before_script")) + as_list(spec.get("script")):
                try:
                    outcome = self._run(cmd, cwd, env, ctx, deadline, emit, pgids, user)
                except OSError as exc:  # e.g. E2BIG: the environment is too large
                    msg = redact(f"cannot run command: {exc}")
                    emit("system", msg)
                    result = ExecutionResult(
                        status=STATUS_FAILED,
                        exit_message=msg,
                        error_code=ERR_EXECUTOR,
                        error_message=msg,
                        failed_command=redact(cmd),
                    )
                    break
                code = str(exit_status(outcome.returncode))
                if outcome.cancelled:
                    emit("system", "task cancelled")
                    result = ExecutionResult(
                        status=STATUS_CANCELLED,
                        exit_code=code,
                        exit_message="task cancelled",
                        failed_command=redact(cmd),
                    )
                    break
                if outcome.timed_out:
                    msg = (
                        f"task timed out after {req.timeout_secs or 0:g}s"
                        if req.timeout_secs
                        else "task timed out"
                    )
                    emit("system", msg)
                    result = ExecutionResult(
                        status=STATUS_FAILED,
                        exit_code=code,
                        exit_message=msg,
                        error_code=ERR_TASK_TIMEOUT,
                        error_message=msg,
                        failed_command=redact(cmd),
                    )
                    break
                if outcome.returncode != 0:
                    msg = f"command exited with code {code}"
                    result = ExecutionResult(
                        status=STATUS_FAILED,
                        exit_code=code,
                        exit_message=msg,
                        error_message=msg,
                        failed_command=redact(cmd),
                    )
                    break

            if result.status != STATUS_CANCELLED:
                self._after_script(req, cwd, env, ctx, emit, pgids, result, user)
                context = dict(markers)
                try:
                    context.update(parse_dotenv(read_task_file(context_file)))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    result.warnings.append(f"cannot read context file: {exc}")
                result.task_context.update(context)
                result.job_context.update(sink.job_markers)
        finally:
            # Background processes left by any command die with the task.
            for pgid in pgids:
                _killpg(pgid, signal.SIGKILL)
        result.stdout = list(tail)
        return result

    # -- helpers -------------------------------------------------------------------------------
    def _after_script(
        self,
        req: TaskRequest,
        cwd: Path,
        env: dict[str, str],
        ctx: ExecutionContext,
        emit: Callable[[str, str], None],
        pgids: list[int],
        result: ExecutionResult,
        user: TaskUser | None,
    ) -> None:
        commands = as_list(req.spec.get("after_script"))
        if not commands:
            return
        budget = req.spec.get("after_script_timeout_secs", DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS)
        try:
            budget = float(budget)
        except (TypeError, ValueError):
            budget = DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS
        deadline = time.monotonic() + budget
        for cmd in commands:
            try:
                outcome = self._run(cmd, cwd, env, ctx, deadline, emit, pgids, user)
            except OSError as exc:
                result.warnings.append(f"after_script could not run: {exc}")
                return
            if outcome.cancelled or outcome.timed_out or outcome.returncode != 0:
                why = "cancelled" if outcome.cancelled else "timed out" if outcome.timed_out else "failed"
                warning = f"after_script {why} (exit code {exit_status(outcome.returncode)}); ignored"
                emit("system", warning)
                result.warnings.append(warning)
                return

    def _environment(
        self, req: TaskRequest, workdir: Path, context_file: Path, user: TaskUser | None
    ) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            # a task user's home is its own folder: nothing of the ant's user
            "HOME": str(workdir) if user is not None else os.environ.get("HOME", str(workdir)),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "SHELL": "/bin/sh",
        }
        env.update(task_variables(req, str(workdir), str(context_file)))
        return env

    def _run(
        self,
        cmd: str,
        cwd: Path,
        env: dict[str, str],
        ctx: ExecutionContext,
        deadline: float | None,
        emit: Callable[[str, str], None],
        pgids: list[int],
        user: TaskUser | None = None,
    ) -> _Outcome:
        emit("system", f"$ {cmd}")
        if ctx.cancel_event.is_set():
            return _Outcome(returncode=-signal.SIGTERM, cancelled=True)
        if deadline is not None and time.monotonic() >= deadline:
            return _Outcome(returncode=-signal.SIGTERM, timed_out=True)
        argv = ["/bin/sh", "-c", cmd]
        # the organization's unprivileged user, without the ant's supplementary groups
        switched = user.command(argv) if user is not None else None
        by_popen = user if switched is None else None
        with reaper.spawning():  # no scan of the orphan reaper sees it unregistered
            proc = subprocess.Popen(
                switched or argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # own process group: a kill reaches grandchildren too
                user=by_popen.uid if by_popen is not None else None,
                group=by_popen.gid if by_popen is not None else None,
                extra_groups=[] if by_popen is not None else None,
            )
            reaper.task_started(proc.pid)
        try:
            return self._follow(proc, ctx, deadline, emit, pgids)
        finally:
            reaper.disown(proc.pid)

    def _follow(
        self,
        proc: subprocess.Popen[bytes],
        ctx: ExecutionContext,
        deadline: float | None,
        emit: Callable[[str, str], None],
        pgids: list[int],
    ) -> _Outcome:
        """Stream the command's output until it and what holds its pipes are done; its outcome."""
        pgid = proc.pid
        pgids.append(pgid)
        assert proc.stdout is not None and proc.stderr is not None
        streams = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        bufs = {fd: bytearray() for fd in streams}
        outcome = _Outcome(returncode=0)
        kill_stage, kill_at, exited_at = 0, 0.0, None

        def flush_lines(fd: int, final: bool = False) -> None:
            buf, stream = bufs[fd], streams[fd]
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line = bytes(buf[:nl]).rstrip(b"\r")
                del buf[: nl + 1]
                emit(stream, line.decode("utf-8", "replace"))
            if buf and (final or len(buf) > MAX_LINE_CHARS):
                emit(stream, bytes(buf).decode("utf-8", "replace"))
                buf.clear()

        # Wait on the pipe and, where the kernel has pidfds, on the process exit itself: no
        # polling on the normal path (a pidfd is readable once the process has exited).
        try:
            pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = None
        open_pipes, exited = len(streams), False
        try:
            with selectors.DefaultSelector() as sel:
                for fd in streams:
                    sel.register(fd, selectors.EVENT_READ, fd)
                if pidfd is not None:
                    sel.register(pidfd, selectors.EVENT_READ, "exit")
                while True:
                    timeout = TICK_SECS
                    if deadline is not None and not kill_stage:
                        timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                    for key, _ in sel.select(timeout):
                        if key.data == "exit":
                            exited = True
                            sel.unregister(key.fileobj)  # the pidfd
                            continue
                        chunk = os.read(key.data, 65536)
                        if chunk:
                            bufs[key.data] += chunk
                            flush_lines(key.data)
                        else:
                            open_pipes -= 1
                            sel.unregister(key.data)
                    if not exited and pidfd is None and proc.poll() is not None:
                        exited = True
                    now = time.monotonic()
                    if exited and exited_at is None:
                        exited_at = now
                    if exited and not open_pipes:
                        break  # the command and everything holding its output are done
                    if kill_stage == 0:
                        if ctx.cancel_event.is_set():
                            outcome.cancelled = True
                        elif deadline is not None and now >= deadline:
                            outcome.timed_out = True
                        if outcome.cancelled or outcome.timed_out:
                            _killpg(pgid, signal.SIGTERM)
                            kill_stage, kill_at = 1, now
                    elif kill_stage == 1 and now - kill_at >= self.kill_grace_secs:
                        _killpg(pgid, signal.SIGKILL)
                        kill_stage, kill_at = 2, now
                    elif kill_stage == 2 and now - kill_at >= 1.0:
                        break  # something outside the group holds the pipe; give up on it
                    if exited_at is not None and kill_stage == 0 and now - exited_at >= ORPHAN_GRACE_SECS:
                        break  # a background child keeps the pipe open; the command is done
        finally:
            if pidfd is not None:
                os.close(pidfd)
        for fd in streams:
            flush_lines(fd, final=True)
        proc.stdout.close()
        proc.stderr.close()
        try:
            outcome.returncode = proc.wait() if exited else proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _killpg(pgid, signal.SIGKILL)
            outcome.returncode = proc.wait()
        if kill_stage:
            # The shell may be gone while grandchildren ignoring SIGTERM live on.
            _killpg(pgid, signal.SIGKILL)
        return outcome
