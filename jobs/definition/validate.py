"""Checks on a built JobSpec: names, graph shape, methods and their required fields, paths, cron."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from ants.methods import QUEEN_METHODS

from . import cron, dag, notify_rules
from .approvals import ApprovalPolicy, PolicyError
from .errors import Problem
from .fanout import MAX_ITEMS, FanOut, FanOutError, instance_type
from .model import HTTP_METHODS, METHODS, JobSpec, TaskSpec, is_special_target
from .resources import read_claim
from .sub_workflow import SubWorkflow, SubWorkflowError
from .triggers import trigger_problems

MAX_TASKS = 100
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#-]+")
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_SEM_LAST = re.compile(r"\d*-?(dev|rc)-?\d*")


def validate(spec: JobSpec) -> list[Problem]:
    problems: list[Problem] = []
    problems += _job_fields(spec)
    problems += _tasks(spec)
    problems += _graph(spec)
    return problems


def _job_fields(spec: JobSpec) -> list[Problem]:
    out: list[Problem] = []
    line = spec.raw and getattr(spec.raw, "lines", {}).get("job_type")
    if not spec.job_type:
        out.append(Problem("job_type is required", field="job_type"))
    elif not NAME_RE.fullmatch(spec.job_type):
        out.append(
            Problem(
                f"invalid job_type '{spec.job_type[:60]}': use letters, digits, '.', '-' or '_' (at most 100)",
                field="job_type",
                line=line or None,
            )
        )
    for name in ("retry", "max_concurrency", "hard_reset_after_retries"):
        value = getattr(spec, name)
        if value is not None and value < 0:
            out.append(Problem(f"must not be negative, got {value}", field=name))
    for name in ("timeout", "delay_between_retries"):
        value = getattr(spec, name)
        if value is not None and value < 0:
            out.append(Problem("must not be negative", field=name))
    out += trigger_problems(spec.triggers)
    out += [Problem(p, field="notify") for p in notify_rules.problems(spec.notify)]
    if spec.webhook and not str(spec.webhook.get("url") or "").strip():
        out.append(Problem("a webhook needs a url", field="webhook"))
    if spec.cron_trigger:
        error = cron_problem(spec.cron_trigger)
        if error:
            out.append(Problem(error, field="cron_trigger"))
    if spec.public_plugin:
        if not spec.sem_version:
            out.append(
                Problem("a public plugin needs a sem_version such as 1.0 or 1.0.1-dev", field="sem_version")
            )
        if spec.job_type and len(spec.job_type.split(".")) < 3:
            out.append(
                Problem(
                    "a public plugin's job_type starts with a bundle id such as io.formicary.my-job",
                    field="job_type",
                )
            )
    if spec.sem_version:
        error = sem_version_problem(spec.sem_version)
        if error:
            out.append(Problem(error, field="sem_version"))
    return out


def cron_problem(expr: str) -> str | None:
    """A syntax check only: 5, 6 or 7 fields (the reference's cronexpr takes seconds first) or a macro."""
    text = expr.strip()
    if text.startswith("@"):
        if text in _CRON_MACROS or re.fullmatch(r"@every \S+", text):
            return None
        return f"unknown cron macro '{text}'"
    parts = text.split()
    if len(parts) not in (5, 6, 7):
        return f"cron expression '{text}' must have 5, 6 or 7 fields, not {len(parts)}"
    for part in parts:
        if not _CRON_FIELD.fullmatch(part):
            return f"invalid cron field '{part}' in '{text}'"
    return cron.check(text)  # values in range, names known


def sem_version_problem(version: str) -> str | None:
    """The reference's CheckSemVersion: numeric major.minor, last part numeric or dev/rc."""
    parts = version.split(".")
    if len(parts) < 2:
        return f"sem_version '{version}' must look like 1.2 or 1.0.1"
    if not all(p.isdigit() for p in parts[:-1]):
        return f"sem_version '{version}' needs numeric major/minor parts"
    if parts[-1].isdigit() or _SEM_LAST.fullmatch(parts[-1]):
        return None
    return f"sem_version '{version}' has a bad last part '{parts[-1]}' (e.g. 1.0.1 or 1.0.1-dev)"


def _bad_path(path: str) -> bool:
    p = path.strip().replace("\\", "/")
    return p.startswith("/") or bool(re.match(r"[A-Za-z]:/", p)) or ".." in p.split("/")


def _fan_out_of(task: TaskSpec, bad: Callable[[str, str], None]) -> FanOut | None:
    """The task's ``fan_out``, or None (absent, or a problem reported)."""
    if not task.fan_out:
        return None
    try:
        fan_out = FanOut.parse(task.fan_out)
    except FanOutError as exc:
        bad(str(exc), "fan_out")
        return None
    if task.task_type and len(instance_type(task.task_type, MAX_ITEMS)) > 200:
        bad("a fan-out task's task_type must leave room for its instances' names (at most 190)", "task_type")
    if fan_out.mode == "task" and task.method in QUEEN_METHODS:
        bad(
            f"a task fan-out runs its instances on ants: {task.method} needs fan_out.fork_job_type", "fan_out"
        )
    return fan_out


def _task_problems(task: TaskSpec, by_name: dict[str, TaskSpec]) -> list[Problem]:
    name = task.task_type or "?"
    out: list[Problem] = []

    def bad(message: str, field: str | None = None) -> None:
        line = getattr(task.raw, "lines", {}).get(field) if field else None
        out.append(Problem(message, task=name, field=field, line=line or task.line))

    if task.task_type and not NAME_RE.fullmatch(task.task_type):
        bad(f"invalid task_type '{task.task_type[:60]}': use letters, digits, '.', '-' or '_'", "task_type")
    if task.task_type and is_special_target(task.task_type):
        bad(f"task_type '{task.task_type}' is reserved for a special target", "task_type")
    if task.method not in METHODS:
        bad(f"unknown method '{task.method}' (one of {', '.join(sorted(METHODS))})", "method")
    for problem in notify_rules.problems(task.notify):
        bad(problem, "notify")
    fan_out = _fan_out_of(task, bad)
    if task.method == "FORK_JOB" and not task.fork_job_type and not (fan_out and fan_out.fork_job_type):
        bad("FORK_JOB needs fork_job_type", "fork_job_type")
    if task.sub_workflow:
        if task.method != "FORK_JOB":
            bad(f"sub_workflow applies to FORK_JOB tasks, not {task.method}", "sub_workflow")
        try:
            SubWorkflow.parse(task.sub_workflow)
        except SubWorkflowError as exc:
            out.append(Problem(exc.message, task=name, field=exc.field,
                               line=getattr(task.raw, "lines", {}).get("sub_workflow") or task.line))  # fmt: skip
    if task.method == "AWAIT_FORKED_JOB":
        if not task.await_forked_tasks:
            bad("AWAIT_FORKED_JOB needs await_forked_tasks", "await_forked_tasks")
        for other in task.await_forked_tasks:
            forker = by_name.get(other)
            if forker is None:
                bad(f"awaits unknown task '{other}'", "await_forked_tasks")
            elif forker.method != "FORK_JOB":
                bad(f"awaits '{other}', which is not a FORK_JOB task", "await_forked_tasks")
    if task.method == "MANUAL" or task.approval_policy:
        try:
            ApprovalPolicy.parse(task.approval_policy)
        except PolicyError as exc:
            bad(str(exc), "approval_policy")
        if task.approval_policy and task.method != "MANUAL":
            bad("approval_policy applies only to a MANUAL task", "approval_policy")
    if task.method == "MESSAGING" and not (task.messaging_request_queue and task.messaging_reply_queue):
        bad("MESSAGING needs messaging_request_queue and messaging_reply_queue", "messaging_request_queue")
    if task.method in HTTP_METHODS and not task.effective_url():
        bad(f"{task.method} needs a url (or the URL as the first script line)", "url")
    for field in ("retry",):
        if task.retry < 0:
            bad(f"must not be negative, got {task.retry}", field)
    for field in ("timeout", "delay_between_retries", "pause_time"):
        value = getattr(task, field)
        if value is not None and value < 0:
            bad("must not be negative", field)
    if task.cost_factor is not None and not 0 <= task.cost_factor <= 1_000_000:
        bad(f"must be a number from 0 to 1000000, got {task.cost_factor:g}", "cost_factor")
    if task.artifact_key_prefix is not None and (
        _bad_path(task.artifact_key_prefix) or len(task.artifact_key_prefix) > 200
    ):
        bad("must be a relative key prefix without '..' (at most 200 characters)", "artifact_key_prefix")
    for field, message in read_claim(task.resources).problems:
        out.append(Problem(message, task=name, field=field,
                           line=getattr(task.raw, "lines", {}).get("resources") or task.line))  # fmt: skip
    for dep in task.dependencies:
        if dep == task.task_type:
            bad("a task cannot depend on itself", "dependencies")
        elif dep not in by_name:
            bad(f"depends on unknown task '{dep}'", "dependencies")
    for field in ("artifacts", "cache"):
        for path in getattr(task, field).get("paths") or []:
            if _bad_path(path):
                bad(f"path '{path}' must be relative and stay inside the working directory", field)
    for label, target in dag.labelled_edges(task):
        if not target:
            bad("empty target", label if label.startswith("on_") else "on_exit_code")
        elif not is_special_target(target) and target not in by_name:
            field = label if label.startswith("on_") else "on_exit_code"
            where = "" if label.startswith("on_") else f" for exit code {label}"
            bad(f"unknown target '{target}'{where}", field)
    return out


def _tasks(spec: JobSpec) -> list[Problem]:
    out: list[Problem] = []
    if not spec.tasks:
        return [Problem("a job needs at least one task", field="tasks")]
    if len(spec.tasks) > MAX_TASKS:
        out.append(Problem(f"a job has at most {MAX_TASKS} tasks, not {len(spec.tasks)}", field="tasks"))
    counts = Counter(t.task_type for t in spec.tasks)
    for i, task in enumerate(spec.tasks):
        if not task.task_type:
            out.append(Problem("task_type is required", task=f"#{i + 1}", field="task_type", line=task.line))
    for name, n in counts.items():
        if name and n > 1:
            out.append(Problem(f"duplicate task_type '{name}' ({n} tasks)", task=name, field="task_type"))
    by_name = {t.task_type: t for t in spec.tasks if t.task_type}
    for task in spec.tasks:
        out += _task_problems(task, by_name)
    return out


def _graph(spec: JobSpec) -> list[Problem]:
    named = [t for t in spec.tasks if t.task_type]
    if not named:
        return []
    out: list[Problem] = []
    cycles = dag.find_cycles(spec)
    for cycle in cycles:
        out.append(Problem(f"cycle: {' -> '.join(cycle)}", task=cycle[0]))
    first = dag.first_task(spec)
    if first is None:
        if not cycles:
            out.append(Problem("no first task: every task is the target of another"))
        return out
    seen = dag.reachable(spec, first.task_type)
    for task in named:
        if task.task_type not in seen:
            out.append(
                Problem(
                    f"task {task.task_type} is not reachable from the first task {first.task_type}",
                    task=task.task_type,
                    line=task.line,
                )
            )
    known = {t.task_type for t in named}
    if not any(not (dag.task_edges(t) & known) for t in named) and not cycles:
        out.append(Problem("no task ends the job: every task has a next task"))
    return out
