"""The task graph and the next-task rule (REFERENCE.md "Next-task lookup"), as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from .model import ACTION_TARGETS, STATE_TARGETS, JobSpec, TaskSpec, is_special_target

COMPLETED, FAILED, FATAL, EXECUTING = "COMPLETED", "FAILED", "FATAL", "EXECUTING"


@dataclass(frozen=True)
class NextStep:
    """What to do after a task finished.

    kind: "task" (run task_type next), "end" (job ends in job_state), "repeat" (run the same task
    again: EXECUTING), "restart_task", "restart_job", "pause_job".
    task_state: the finished task's effective state (an exit-code entry may override it).
    """

    kind: str
    task_type: str | None = None
    task_state: str = COMPLETED
    job_state: str | None = None
    error_code: str | None = None
    no_retry: bool = False


def targets(task: TaskSpec) -> set[str]:
    """Every target the task names: tasks and special targets."""
    out = set(task.on_exit_code.values())
    for t in (task.on_completed, task.on_failed):
        if t:
            out.add(t)
    return out


def task_edges(task: TaskSpec) -> set[str]:
    """Targets that are task names: the graph's edges (EXECUTING, RESTART_* ... are not edges)."""
    return {t for t in targets(task) if not is_special_target(t)}


def labelled_edges(task: TaskSpec) -> list[tuple[str, str]]:
    """(label, target) for every outgoing entry, in a stable order."""
    out: list[tuple[str, str]] = []
    if task.on_completed:
        out.append(("on_completed", task.on_completed))
    if task.on_failed:
        out.append(("on_failed", task.on_failed))
    out.extend((code, target) for code, target in task.on_exit_code.items())
    return out


def has_next(task: TaskSpec) -> bool:
    return bool(task.on_exit_code or task.on_completed or task.on_failed)


def untargeted(spec: JobSpec) -> list[TaskSpec]:
    targeted = set().union(*(task_edges(t) for t in spec.tasks)) if spec.tasks else set()
    return [t for t in spec.tasks if t.task_type not in targeted]


def first_task(spec: JobSpec) -> TaskSpec | None:
    """The task nothing targets; like the reference, one with a next step wins over a lone one."""
    candidates = untargeted(spec)
    if len(spec.tasks) == 1:
        return spec.tasks[0]
    for t in candidates:
        if has_next(t):
            return t
    return candidates[0] if candidates else None


def reachable(spec: JobSpec, start: str) -> set[str]:
    by_name = {t.task_type: t for t in spec.tasks}
    seen = {start}
    todo = [start]
    while todo:
        task = by_name.get(todo.pop())
        if task is None:
            continue
        for nxt in task_edges(task):
            if nxt not in seen and nxt in by_name:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def find_cycles(spec: JobSpec, limit: int = 5) -> list[list[str]]:
    """Distinct cycles as paths ["a", "b", "a"], found by iterative depth-first search."""
    by_name = {t.task_type: t for t in spec.tasks}
    color: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    for root in by_name:
        if color.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(sorted(task_edges(by_name[root]) & by_name.keys()))]
        color[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = 2
                stack.pop()
                continue
            if color.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                key = frozenset(cycle)
                if key not in seen_sets:
                    seen_sets.add(key)
                    cycles.append(cycle)
                    if len(cycles) >= limit:
                        return cycles
            elif not color.get(nxt):
                color[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(task_edges(by_name[nxt]) & by_name.keys())))
    return cycles


def _edge_for_state(task: TaskSpec, state: str) -> str | None:
    if state == COMPLETED and task.on_completed:
        return task.on_completed
    if state == FAILED and task.on_failed:
        return task.on_failed
    return task.on_exit_code.get(state)


def _end(task_state: str, may_fail: bool, no_retry: bool, error_code: str | None) -> NextStep:
    ok = task_state == COMPLETED or (may_fail and not no_retry)
    return NextStep("end", None, task_state, COMPLETED if ok else FAILED, error_code, no_retry)


def _follow(task: TaskSpec, target: str, state: str, no_retry: bool, error_code: str | None) -> NextStep:
    """Turn a target named by an edge into a step."""
    if target == EXECUTING:
        return NextStep("repeat", task.task_type, EXECUTING)
    if target == "RESTART_TASK":
        return NextStep("restart_task", task.task_type, state, error_code=error_code)
    if target == "RESTART_JOB":
        return NextStep("restart_job", None, state, error_code=error_code)
    if target == "PAUSE_JOB":
        return NextStep("pause_job", None, state, error_code=error_code)
    if target in STATE_TARGETS:
        fatal = no_retry or target == FATAL
        return _end(COMPLETED if target == COMPLETED else FAILED, task.allow_failure, fatal, error_code)
    if target.startswith("ERR_"):
        return _end(FAILED, task.allow_failure, no_retry, target)
    return NextStep("task", target, state, error_code=error_code, no_retry=no_retry)


def next_step(task: TaskSpec, state: str, exit_code: str | int | None = None) -> NextStep:
    """The reference's next-task lookup for a finished task.

    1. the exit-code entry: EXECUTING repeats the task; COMPLETED / FAILED / FATAL become the
       task's state (and its edge is followed); ERR_* fails it with that error code; RESTART_* /
       PAUSE_JOB are actions; a task name is the next task;
    2. else the entry for the (possibly overridden) state: on_completed / on_failed;
    3. else a failed allow_failure task with on_completed and no on_failed follows on_completed;
    4. else the job ends: COMPLETED if the task completed or may fail, FAILED otherwise.
    """
    state = (state or "").upper()
    if state == "SKIPPED":  # an `except` task counts as completed
        state = COMPLETED
    no_retry = False
    error_code: str | None = None
    code = str(exit_code).strip().upper() if exit_code is not None else ""
    entry = task.on_exit_code.get(code) if code else None
    if entry:
        if entry in STATE_TARGETS:
            state = COMPLETED if entry == COMPLETED else FAILED
            no_retry = entry == FATAL
        elif entry.startswith("ERR_"):
            state, error_code = FAILED, entry
        elif entry in ACTION_TARGETS:
            return _follow(task, entry, state, no_retry, error_code)
        else:
            return NextStep("task", entry, state)
    edge = _edge_for_state(task, state)
    if edge and not (edge == entry and entry in STATE_TARGETS):
        return _follow(task, edge, state, no_retry, error_code)
    if state == FAILED and task.allow_failure and task.on_completed and not task.on_failed and not no_retry:
        return _follow(task, task.on_completed, state, no_retry, error_code)
    return _end(state, task.allow_failure, no_retry, error_code)


def always_run_tasks(spec: JobSpec, executed: set[str]) -> list[str]:
    """`always_run` tasks still to run at the end of a failed job, in definition order."""
    return [t.task_type for t in spec.tasks if t.always_run and t.task_type not in executed]
