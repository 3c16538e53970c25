"""Helpers shared by the container executors (DOCKER, KUBERNETES).

- Kubernetes-style quantities (``2Gi``, ``500m``, ``1.5``) for CPU and memory limits.
- The task environment inside a container (the shell executor's rules without the host's
  PATH/HOME: the image's own environment stays in charge of those).
- A step script with status markers (used where commands cannot be run one by one, e.g. a pod's
  main container): each command runs in its own ``sh -c`` and a marker line after it reports its
  exit status, so ``exit_code`` and ``failed_command`` are exact.
- ``LineSplitter``: bytes in, complete text lines out.
- Container labels that tie a container to its task and organization (for listing/cancel).
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ants.executors.base import MAX_LINE_CHARS, as_dict, as_str, task_variables
from ants.protocol import TaskRequest

CONTEXT_DIR = "/.formicary"
CONTEXT_FILE = f"{CONTEXT_DIR}/context.env"
DEFAULT_WORKING_DIR = "/workspace"
logger = logging.getLogger(__name__)

# Labels put on every container/pod the ants start (values are plain strings).
LABEL_MANAGED = "formicary.io/managed-by"
LABEL_ANT = "formicary.io/ant-id"
LABEL_TASK = "formicary.io/task-execution-id"
LABEL_ATTEMPT = "formicary.io/attempt"
LABEL_REQUEST = "formicary.io/job-request-id"
LABEL_ORG = "formicary.io/organization-id"
LABEL_TASK_TYPE = "formicary.io/task-type"
LABEL_ROLE = "formicary.io/role"  # main | service | helper

# -- quantities -----------------------------------------------------------------------------

_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "K": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY_RE = re.compile(r"^\s*([+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]{0,2})\s*$")


class QuantityError(ValueError):
    """A resource quantity that cannot be parsed."""


def parse_quantity(value: Any, what: str = "quantity") -> Decimal:
    """``"2Gi"`` -> 2147483648, ``"500m"`` -> 0.5, ``1`` -> 1 (Kubernetes quantity syntax)."""
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"{what}: {value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY_RE.match(str(value))
    if not match or match.group(2) not in _SUFFIXES:
        raise QuantityError(f"{what}: {value!r} is not a quantity (e.g. 500m, 2, 512Mi, 2Gi)")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as exc:  # pragma: no cover - the regex rules this out
        raise QuantityError(f"{what}: {value!r}: {exc}") from None


def memory_bytes(value: Any, what: str = "memory") -> int:
    q = parse_quantity(value, what)
    if q <= 0:
        raise QuantityError(f"{what}: {value!r} must be > 0")
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def cpu_nano(value: Any, what: str = "cpu") -> int:
    """CPUs as Docker's ``nano_cpus`` (``"500m"`` -> 500000000)."""
    q = parse_quantity(value, what)
    if q <= 0:
        raise QuantityError(f"{what}: {value!r} must be > 0")
    return int((q * Decimal(10) ** 9).to_integral_value(rounding="ROUND_CEILING"))


def is_quantity(value: Any) -> bool:
    try:
        parse_quantity(value)
        return True
    except QuantityError:
        return False


# -- environment ----------------------------------------------------------------------------


def task_environment(req: TaskRequest, working_dir: str, context_file: str = CONTEXT_FILE) -> dict[str, str]:
    """Variables for a task's container: as the shell executor's, without host PATH/HOME."""
    return task_variables(req, working_dir, context_file)


def container_working_dir(spec: dict[str, Any], default: str = DEFAULT_WORKING_DIR) -> str:
    wd = as_str(spec.get("working_dir") or (as_dict(spec.get("container")).get("working_dir")) or default)
    if not wd.startswith("/"):
        wd = f"{default.rstrip('/')}/{wd}"
    parts: list[str] = []
    for part in wd.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValueError(f"working_dir {wd!r} must not contain '..'")
        parts.append(part)
    return "/" + "/".join(parts)


def task_labels(req: TaskRequest, ant_id: str, role: str = "main") -> dict[str, str]:
    return {
        LABEL_MANAGED: "formicary",
        LABEL_ANT: ant_id,
        LABEL_TASK: str(req.task_execution_id),
        LABEL_ATTEMPT: str(req.attempt),
        LABEL_REQUEST: str(req.job_request_id),
        LABEL_ORG: req.organization_id or "",
        LABEL_TASK_TYPE: req.task_type,
        LABEL_ROLE: role,
    }


# -- step script with markers ---------------------------------------------------------------

STEP_MAIN = "main"
STEP_AFTER = "after"


def new_marker() -> str:
    return f"##formicary-step-{secrets.token_hex(8)}"


def step_script(
    commands: list[str],
    after: list[str],
    marker: str,
    working_dir: str | None = None,
    context_file: str | None = None,
    prologue: str = "",
    epilogue: str = "",
) -> str:
    """A POSIX sh script: each command in its own ``sh -c``; the first failure stops ``commands``;
    ``after`` always runs (its failures are ignored); exits with the first failure's status.
    ``prologue`` (raw sh, in the working dir) runs before the commands, ``epilogue`` after
    ``after`` (the KUBERNETES executor copies files in and out there).

    After each command it prints ``<marker> <step> <index> <status>`` on a line of its own; at
    the end each line of ``context_file`` (when given and present) as ``<marker> ctx <line>``.
    """
    lines = ["__fc_rc=0"]
    marker = shlex.quote(marker)
    if working_dir:
        lines.append(f"mkdir -p {shlex.quote(working_dir)} && cd {shlex.quote(working_dir)} || exit 126")
    if prologue:
        lines.append(prologue)
    for i, cmd in enumerate(commands):
        lines.append(
            f"if [ $__fc_rc -eq 0 ]; then sh -c {shlex.quote(cmd)} </dev/null; __fc_rc=$?; "
            f"printf '\\n%s %s %s %s\\n' {marker} {STEP_MAIN} {i} $__fc_rc; fi"
        )
    for i, cmd in enumerate(after):
        lines.append(
            f"sh -c {shlex.quote(cmd)} </dev/null; printf '\\n%s %s %s %s\\n' {marker} {STEP_AFTER} {i} $?"
        )
    if epilogue:
        lines.append(epilogue)
    if context_file:
        q = shlex.quote(context_file)
        lines.append(
            f'if [ -f {q} ]; then while IFS= read -r __fc_l || [ -n "$__fc_l" ]; do '
            f"printf '%s ctx %s\\n' {marker} \"$__fc_l\"; done < {q}; fi"
        )
    lines.append("exit $__fc_rc")
    return "\n".join(lines) + "\n"


@dataclass
class StepTracker:
    """Reads output lines of a ``step_script`` run: forwards real output, records statuses.

    A marker is preceded by a newline, so a command's last line without one is not lost;
    the empty line that newline makes after output that did end with one is dropped.
    """

    marker: str
    emit: Callable[[str], None]
    main: dict[int, int] = field(default_factory=dict)
    after: dict[int, int] = field(default_factory=dict)
    context_lines: list[str] = field(default_factory=list)
    # ``<marker> out <base64>`` lines: files the script sends back (KUBERNETES copy-back)
    out_lines: list[str] = field(default_factory=list)
    _pending_blank: bool = False

    def feed(self, line: str) -> None:
        if line.startswith(self.marker + " "):
            self._pending_blank = False
            rest = line[len(self.marker) + 1 :]
            if rest.startswith("ctx "):
                self.context_lines.append(rest[4:])
                return
            if rest.startswith("out "):
                self.out_lines.append(rest[4:])
                return
            parts = rest.split()
            if len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip("-").isdigit():
                (self.main if parts[0] == STEP_MAIN else self.after)[int(parts[1])] = int(parts[2])
            return
        if self._pending_blank:
            self.emit("")
        self._pending_blank = line == ""
        if line != "":
            self.emit(line)

    def finish(self) -> None:
        if self._pending_blank:
            self.emit("")
            self._pending_blank = False


class LineSplitter:
    """Accumulates bytes and yields decoded lines (long lines are cut at MAX_LINE_CHARS)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> Iterable[str]:
        self._buf += chunk
        out = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            out.append(bytes(self._buf[:nl]).rstrip(b"\r").decode("utf-8", "replace"))
            del self._buf[: nl + 1]
        if len(self._buf) > MAX_LINE_CHARS:
            out.append(bytes(self._buf).decode("utf-8", "replace"))
            self._buf.clear()
        return out

    def flush(self) -> Iterable[str]:
        if not self._buf:
            return []
        text = bytes(self._buf).rstrip(b"\r").decode("utf-8", "replace")
        self._buf.clear()
        return [text]


# -- LIST_CONTAINERS / TERMINATE_CONTAINER and the heartbeat's container list -----------------

# What a heartbeat carries per container (``AntRegistration.containers``), and at most how many.
HEARTBEAT_CONTAINER_KEYS = (
    "id", "name", "method", "ant_id", "image", "state", "started_at", "role", "task_execution_id",
    "attempt", "job_request_id", "task_type", "organization_id",
)  # fmt: skip
MAX_HEARTBEAT_CONTAINERS = 200
# A heartbeat waits this long for a fresh list; a slow engine/API server gets the previous one,
# so a hung Docker or Kubernetes call never makes the ant miss heartbeats and look dead.
HEARTBEAT_LIST_WAIT_SECS = 1.0


def compact_container(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info.get(k) for k in HEARTBEAT_CONTAINER_KEYS if info.get(k) not in (None, "")}


class HeartbeatContainers:
    """``worker.heartbeat_containers``: the ant's running containers, listed on a helper thread
    (at most one listing at a time) and awaited for ``wait_secs``; else the last known list."""

    def __init__(
        self, list_all: Callable[[], list[dict[str, Any]]], wait_secs: float = HEARTBEAT_LIST_WAIT_SECS
    ):
        self._list_all = list_all
        self.wait_secs = wait_secs
        self._lock = threading.Lock()
        self._last: list[dict[str, Any]] = []
        self._running: threading.Event | None = None

    def _refresh(self, done: threading.Event) -> None:
        try:
            found = self._list_all()
            with self._lock:
                self._last = [compact_container(c) for c in found[:MAX_HEARTBEAT_CONTAINERS]]
        except Exception:
            logger.debug("listing containers failed", exc_info=True)
        finally:
            done.set()

    def __call__(self) -> list[dict[str, Any]]:
        with self._lock:
            done = self._running
            if done is None or done.is_set():
                done = self._running = threading.Event()
                threading.Thread(
                    target=self._refresh, args=(done,), name="ant-list-containers", daemon=True
                ).start()
        done.wait(self.wait_secs)
        with self._lock:
            return list(self._last)


def install_container_handlers(worker: Any) -> None:
    """Register the worker's LIST_CONTAINERS / TERMINATE_CONTAINER handlers for the container
    methods enabled on the ant, and make its heartbeats carry its running containers.

    Replies are TaskResponses (``action`` echoed; the queens ignore them): LIST_CONTAINERS is
    COMPLETED with ``task_context["containers"]`` (dicts with id, name, method, state, task and
    organization ids); TERMINATE_CONTAINER reads ``spec["container_id"]`` and answers FAILED
    (``ERR_NOT_FOUND``) when this ant has no such container. A non-empty ``organization_id`` on
    the request limits both to that organization's containers (the container's label decides).
    """
    from ants.protocol import (
        ACTION_LIST_CONTAINERS,
        ACTION_TERMINATE_CONTAINER,
        STATUS_COMPLETED,
        STATUS_FAILED,
        TaskResponse,
    )

    lookup: Callable[..., Any] | None = getattr(worker, "executor_lookup", None)
    if lookup is None:
        from ants.executors.base import executor_for

        lookup = executor_for

    def executors() -> list[Any]:
        out = []
        for method in ("DOCKER", "KUBERNETES"):
            if method in worker.config.methods:
                try:
                    out.append(lookup(method, worker.config))
                except Exception:  # the SDK is missing: nothing of that kind runs here
                    continue
        return out

    def list_all(organization_id: str = "") -> tuple[list[dict[str, Any]], list[str]]:
        found: list[dict[str, Any]] = []
        errors = []
        for ex in executors():
            try:
                found.extend(ex.list_containers(organization_id))
            except Exception as exc:
                errors.append(f"{type(ex).__name__}: {exc}")
        return found, errors

    def reply(req: TaskRequest, status: str, **kw: Any) -> TaskResponse:
        return TaskResponse.answering(req, worker.config.ant_id, status, ended_at=time.time(), **kw)

    def list_containers(req: TaskRequest) -> TaskResponse:
        found, errors = list_all(req.organization_id)
        return reply(req, STATUS_COMPLETED, task_context={"containers": found}, warnings=errors)

    def terminate(req: TaskRequest) -> TaskResponse:
        cid = as_str(req.spec.get("container_id"))
        for ex in executors():
            try:
                if cid and ex.terminate(cid, req.organization_id):
                    logger.info("ant %s: container %s terminated on request", worker.config.ant_id, cid)
                    return reply(req, STATUS_COMPLETED, exit_message=f"container {cid} terminated")
            except Exception as exc:
                return reply(req, STATUS_FAILED, error_code="ERR_EXECUTOR", error_message=str(exc))
        return reply(
            req, STATUS_FAILED, error_code="ERR_NOT_FOUND", error_message=f"no container {cid!r} here"
        )

    worker.action_handlers[ACTION_LIST_CONTAINERS] = list_containers
    worker.action_handlers[ACTION_TERMINATE_CONTAINER] = terminate
    if any(m in worker.config.methods for m in ("DOCKER", "KUBERNETES")):
        worker.heartbeat_containers = HeartbeatContainers(lambda: list_all()[0])


def terminate_request(container: dict[str, Any], organization_id: str, user_id: str = "") -> TaskRequest:
    """The TERMINATE_CONTAINER request the API sends to the container's ant (control stream).

    It names the container's task and request so the ant's reply (ignored by the queens) says
    what it was about; ``organization_id`` makes the ant check the container's label too."""
    from ants.protocol import ACTION_TERMINATE_CONTAINER

    def number(name: str) -> int:
        text = str(container.get(name) or "")
        return int(text) if text.isdigit() else 0

    return TaskRequest(
        task_execution_id=number("task_execution_id"),
        job_request_id=number("job_request_id"),
        attempt=max(number("attempt"), 1),
        task_type=as_str(container.get("task_type")),
        action=ACTION_TERMINATE_CONTAINER,
        method=as_str(container.get("method") or "DOCKER"),
        organization_id=organization_id,
        user_id=user_id,
        ant_id=as_str(container.get("ant_id")),
        spec={"container_id": as_str(container.get("id"))},
    )
