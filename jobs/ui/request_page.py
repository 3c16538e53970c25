"""What the request page shows: every run and attempt of every task, durations, the failure that
ended the request, and the timeline. Reads only; the page and its JSON refresh share it.

What the data keeps: each run of a request (a restart, a job retry) is a ``JobExecution`` with its
own ``TaskExecution`` rows; within one run a task retry re-dispatches the same row (``attempt``
counts up). Log chunks are kept per row and attempt; the row's fields are its latest attempt's,
and each earlier attempt's state, exit code, error, ant and times are in ``earlier_attempts``
(attempts from before that field existed keep just their log). A task a
soft restart reused from an earlier run is a row that never went to an ant (``attempt`` 0): its
times, log and artifacts are those of the run it came from.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from artifacts.models import Artifact
from jobs.definition.dot import fan_out_label
from jobs.fan_out_selectors import FanOutGroup, InstanceRow, fan_out_groups
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.states import TaskState

# exit-code targets that make the task fail; any other target routes the graph on purpose
FAILING_TARGETS = {"FAILED", "FATAL"}
RUNNING = {TaskState.STARTED, TaskState.EXECUTING}


def format_duration(seconds: float | None) -> str:
    """Seconds-precise and short: ``0.4 s``, ``11.2 s``, ``2 min 5 s``, ``1 h 3 min``."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _secs(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class Attempt:
    """One run of a task on an ant: a row and one of its attempts."""

    number: int  # 1-based, over every run of the request
    run: int  # which execution of the request (1-based)
    task: TaskExecution
    row_attempt: int  # the row's own attempt number (what its log chunks are keyed by)
    latest_of_row: bool  # the row's own fields describe its latest attempt
    earlier: dict[str, Any] | None = None  # an earlier attempt as the row recorded it

    @property
    def started_at(self) -> datetime | None:
        if self.latest_of_row:
            return self.task.started_at
        return _parse(self.earlier.get("started_at")) if self.earlier else None

    @property
    def ended_at(self) -> datetime | None:
        if self.latest_of_row:
            return self.task.ended_at
        return _parse(self.earlier.get("ended_at")) if self.earlier else None

    @property
    def state(self) -> str:
        if self.latest_of_row:
            return self.task.task_state
        return str(self.earlier.get("state") or "RETRIED") if self.earlier else "RETRIED"

    @property
    def exit_code(self) -> str:
        if self.latest_of_row:
            return self.task.exit_code
        return str(self.earlier.get("exit_code") or "") if self.earlier else ""

    def as_json(self) -> dict[str, Any]:
        t = self.task
        error = self.earlier.get("error_message", "") if self.earlier else ""
        return {
            "number": self.number, "run": self.run, "task_execution_id": t.pk, "row_attempt": self.row_attempt,
            "state": self.state, "exit_code": self.exit_code, "error_message": error,
            "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at),
            "duration": format_duration(_secs(self.started_at, self.ended_at)),
        }  # fmt: skip


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


@dataclass
class TaskRow:
    task_type: str
    spec: dict[str, Any]
    current: TaskExecution | None = None  # the row of the latest run
    attempts: list[Attempt] = field(default_factory=list)
    reused: bool = False  # the latest run reused this task's result from an earlier run
    job_state: str = ""

    @property
    def shown(self) -> Attempt | None:
        """The attempt whose times and log the page shows first: the latest real one."""
        return self.attempts[-1] if self.attempts else None

    @property
    def state(self) -> str:
        return self.current.task_state if self.current else ""

    @property
    def exit_code(self) -> str:
        return self.current.exit_code if self.current else ""

    @property
    def route(self) -> str | None:
        """The task a declared exit code sent the graph to (``on_exit_code: {2: tuesday}``)."""
        code = (self.exit_code or "").strip().upper()
        target = (self.spec.get("on_exit_code") or {}).get(code) if code else None
        if not target or target in FAILING_TARGETS or str(target).startswith("ERR_"):
            return None
        return str(target)

    @property
    def state_label(self) -> str:
        if self.route:
            return f"exit {self.exit_code} → {self.route}"
        if self.job_state == "PAUSED" and self.state in RUNNING:
            return "running (job paused)"
        if self.reused:
            return f"{self.state} (reused)"
        return self.state or "not run"

    @property
    def state_class(self) -> str:
        return "ROUTED" if self.route else (self.state or "NOTRUN")

    @property
    def started_at(self) -> datetime | None:
        a = self.shown
        return a.started_at if a else None

    @property
    def ended_at(self) -> datetime | None:
        a = self.shown
        return a.ended_at if a else None

    @property
    def duration(self) -> str:
        return format_duration(_secs(self.started_at, self.ended_at))

    def as_json(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type, "state": self.state, "state_label": self.state_label,
            "state_class": self.state_class, "exit_code": self.exit_code, "reused": self.reused,
            "task_execution_id": self.current.pk if self.current else None,
            "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at), "duration": self.duration,
            "attempts": [a.as_json() for a in self.attempts],
        }  # fmt: skip


def _reused(task: TaskExecution, execution: JobExecution) -> bool:
    return bool(
        execution.reuse_execution_id
        and task.attempt == 0
        and task.task_state in (TaskState.COMPLETED, TaskState.SKIPPED)
    )


def task_rows(job_request: JobRequest) -> tuple[list[TaskRow], list[JobExecution]]:
    """Every task of the graph in definition order (then any other that ran), with its attempts
    over every run of the request."""
    specs = {t["task_type"]: t for t in job_request.job_definition.spec.get("tasks") or []}
    rows: dict[str, TaskRow] = {
        name: TaskRow(name, spec, job_state=job_request.job_state) for name, spec in specs.items()
    }
    runs = list(job_request.executions.order_by("started_at", "pk"))
    # a fan-out's instances are drawn under their step (fan_out_page), never as tasks of their own
    tasks = TaskExecution.objects.filter(job_execution__job_request=job_request, fan_out_of="").order_by(
        "task_order", "pk"
    )
    by_run: dict[int, list[TaskExecution]] = {}
    for t in tasks:
        by_run.setdefault(t.job_execution_id, []).append(t)
    number: dict[str, int] = {}
    for run_no, execution in enumerate(runs, start=1):
        for t in by_run.get(execution.pk, []):
            row = rows.setdefault(t.task_type, TaskRow(t.task_type, {}, job_state=job_request.job_state))
            latest = execution.pk == job_request.last_execution_id
            if latest:
                row.current = t
                row.reused = _reused(t, execution)
            if _reused(t, execution):
                continue  # not a run of its own: its attempts are listed under the run it came from
            earlier = {e.get("attempt"): e for e in t.earlier_attempts or [] if isinstance(e, dict)}
            for a in range(1, t.attempt + 1):
                number[t.task_type] = number.get(t.task_type, 0) + 1
                row.attempts.append(
                    Attempt(number[t.task_type], run_no, t, a, a == t.attempt, earlier.get(a))
                )
    return list(rows.values()), runs


@dataclass
class Failure:
    task_type: str
    exit_code: str
    command: str
    error: str


def failure_of(job_request: JobRequest, rows: list[TaskRow]) -> Failure | None:
    """The task that failed the request (the one the run names, else the last failed one)."""
    if job_request.job_state != "FAILED":
        return None
    execution = job_request.last_execution
    named = execution.failed_task_type if execution else ""
    failed = [r for r in rows if r.current and r.state == TaskState.FAILED and not r.route]
    row = next((r for r in failed if r.task_type == named), failed[-1] if failed else None)
    if row is None or row.current is None:
        error = " ".join(p for p in (job_request.error_code, job_request.error_message) if p)
        return Failure("", "", "", error) if error else None
    t = row.current
    error = " ".join(p for p in (t.error_code, t.error_message) if p) or " ".join(
        p for p in (job_request.error_code, job_request.error_message) if p
    )
    return Failure(row.task_type, t.exit_code, t.failed_command, error)


def request_times(job_request: JobRequest) -> dict[str, Any]:
    """Queue wait and run time of the latest run; ``running_since`` drives the live clock."""
    ex = job_request.last_execution
    started = ex.started_at if ex else None
    ended = ex.ended_at if ex else None
    queued = job_request.scheduled_at if job_request.scheduled_at and started else None
    return {
        "started_at": started,
        "ended_at": ended,
        "duration": format_duration(_secs(started, ended)),
        "queue_wait": format_duration(_secs(queued, started))
        if queued and started and started >= queued
        else "",
        "running_since": _iso(started) if started and not ended else None,
    }


def _span_json(started: datetime | None, ended: datetime | None, state: str, label: str) -> dict[str, Any]:
    return {"started_at": _iso(started), "ended_at": _iso(ended), "state": state, "label": label,
            "duration": format_duration(_secs(started, ended))}  # fmt: skip


def timeline(
    job_request: JobRequest, rows: list[TaskRow], groups: dict[str, FanOutGroup] | None = None
) -> dict[str, Any]:
    """Bars for the Gantt tab, in seconds from the run's start. A task's queue wait is estimated
    from when it could have started: the latest end of a task of the run that ended before it
    started (or the run's start); the data keeps no "ready" time per task. Earlier attempts of
    the run (retries) are drawn on the task's row before its latest one; a fan-out step's
    instances get one thin bar each under the step (the first ``CHIPS`` of them)."""
    ex = job_request.last_execution
    if ex is None:
        return {"origin": None, "bars": []}
    origin = ex.started_at
    ends = sorted(r.ended_at for r in rows if r.ended_at and not r.reused)
    bars = []
    for r in rows:
        if r.reused or not r.started_at:
            continue
        ready = max([e for e in ends if e <= r.started_at] or [origin])
        earlier = [
            _span_json(a.started_at, a.ended_at, a.state, f"attempt {a.row_attempt}: {a.state}")
            for a in r.attempts[:-1]
            if a.task.job_execution_id == ex.pk and a.started_at
        ]
        group = (groups or {}).get(r.task_type)
        bars.append({
            "task_type": r.task_type, "state": r.state_class, "label": r.state_label,
            "ready": _iso(ready), "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at),
            "wait": format_duration(_secs(ready, r.started_at)), "duration": r.duration, "attempts": earlier,
            "instances": _timeline_instances(group) if group else None,
        })  # fmt: skip
    return {"origin": _iso(origin), "ended_at": _iso(ex.ended_at), "now": _iso(timezone.now()), "bars": bars}


def _timeline_instances(group: FanOutGroup) -> dict[str, Any]:
    bars = []
    for i in group.shown:
        if not i.started_at:
            continue
        earlier = [
            _span_json(_parse(e.get("started_at")), _parse(e.get("ended_at")), str(e.get("state") or "RETRIED"),
                       f"attempt {e.get('attempt')}: {e.get('state') or 'RETRIED'}")
            for e in i.earlier_attempts if e.get("started_at")
        ]  # fmt: skip
        bars.append({"task_type": i.task_type, "index": i.index, "task_execution_id": i.pk,
                     **_span_json(i.started_at, i.ended_at, i.state, f"[{i.index}] {i.state}"),
                     "attempts": earlier})  # fmt: skip
    return {"total": group.total, "more": group.total - len(bars), "bars": bars}


def _instance_attempts(i: InstanceRow, run: int) -> list[dict[str, Any]]:
    """An instance's attempts in the shape of ``Attempt.as_json``, so its log opens as a task's:
    the row's fields are its latest attempt, ``earlier_attempts`` the ones before."""
    earlier = {e.get("attempt"): e for e in i.earlier_attempts}
    out = []
    for a in range(1, i.attempt + 1):
        if a == i.attempt:
            started, ended, state, code, error = (
                i.started_at,
                i.ended_at,
                i.state,
                i.exit_code,
                i.error_message,
            )
        else:
            e = earlier.get(a) or {}
            started, ended = _parse(e.get("started_at")), _parse(e.get("ended_at"))
            state, code = str(e.get("state") or "RETRIED"), str(e.get("exit_code") or "")
            error = str(e.get("error_message") or "")
        out.append({
            "number": a, "run": run, "task_execution_id": i.pk, "row_attempt": a, "state": state,
            "exit_code": code, "error_message": error, "started_at": _iso(started), "ended_at": _iso(ended),
            "duration": format_duration(_secs(started, ended)),
        })  # fmt: skip
    return out


def fan_out_page(rows: list[TaskRow], groups: dict[str, FanOutGroup], run: int) -> list[dict[str, Any]]:
    """Each fan-out step of the graph (definition order) with its instances' counts per state
    and the first ones as chips, each carrying what the log view needs to open it."""
    out = []
    for r in rows:
        fan_out = r.spec.get("fan_out")
        if not isinstance(fan_out, dict) or not fan_out:
            continue
        group = groups.get(r.task_type) or FanOutGroup(r.task_type)
        out.append({
            "step": r.task_type, "label": fan_out_label(fan_out), "state": r.state,
            "item_var": str(fan_out.get("item_var") or ""), "max_parallel": fan_out.get("max_parallel") or 0,
            "total": group.total, "counts": group.counts, "more": group.more,
            "instances": [
                {"task_type": i.task_type, "index": i.index, "state": i.state, "state_class": i.state or "NOTRUN",
                 "state_label": i.state, "exit_code": i.exit_code, "error": " ".join(p for p in (i.error_code, i.error_message) if p)[:200],
                 "task_execution_id": i.pk, "ant_id": i.ant_id, "fan_out_of": r.task_type,
                 "started_at": _iso(i.started_at), "ended_at": _iso(i.ended_at),
                 "duration": format_duration(_secs(i.started_at, i.ended_at)),
                 "attempts": _instance_attempts(i, run)}
                for i in group.shown
            ],
        })  # fmt: skip
    return out


def artifact_rows(artifacts: list[Artifact], runs: list[JobExecution]) -> list[dict[str, Any]]:
    """Each artifact names the run and the task attempt it came from, so two runs' (or two
    retries') ``publish.log`` are told apart."""
    run_of: dict[int | None, int] = {ex.pk: n for n, ex in enumerate(runs, start=1)}
    return [
        {"artifact": a, "run": run_of.get(a.job_execution_id), "attempt": _int(a.metadata.get("attempt"))}
        for a in artifacts
    ]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def page_state(job_request: JobRequest) -> dict[str, Any]:
    """The JSON the page refreshes its tasks table, clock, fan-outs and timeline from."""
    rows, runs = task_rows(job_request)
    failure = failure_of(job_request, rows)
    times = request_times(job_request)
    ex_id = job_request.last_execution_id
    groups = fan_out_groups(execution_id=ex_id) if ex_id else {}
    return {
        "job_state": job_request.job_state,
        "duration": times["duration"], "running_since": times["running_since"],
        "tasks": [r.as_json() for r in rows],
        "failed_task": failure.task_type if failure else None,
        "fan_outs": fan_out_page(rows, groups, len(runs)),
        "timeline": timeline(job_request, rows, groups),
    }  # fmt: skip
