"""Fan-out steps (``fan_out`` on a task) in the queen.

The step is a task row of its own that the queen runs: it reads the items, creates the
instances ("<step>-fo-<i>" rows with ``fan_out_of``/``fan_out_index``) in one INSERT within
``max_parallel``, and stays EXECUTING. Task instances are ordinary READY tasks (the dispatch pass
sends them to any fitting ant, their item in ``context[ITEM]``); job instances start a child job
each through ``forks.fork`` and are finished by ``check_children``. Each instance's end (the
answers pipeline, a timeout, a skip) calls ``instance_ended``: a retry as the step's settings say,
else ``progress`` once per step and round, which starts the next instances, cancels the siblings
(``fail_fast``) and ends the step with its aggregate (``jobs.definition.fanout``). Everything is
in the database: a queen killed at any moment leaves rows another queen (or itself) carries on.
"""

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction

from jobs.definition import fanout, policy
from jobs.definition.error_rules import ErrorRule
from jobs.definition.model import JobSpec, TaskSpec
from jobs.domain import follow, forks, transitions
from jobs.domain.messaging import get_transport
from jobs.domain.rules import QUEEN_ANT
from jobs.domain.sends import cancel_on_ants
from jobs.domain.specs import graph_of, task_of
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.states import JOB_TERMINAL, JobState, TaskState

log = logging.getLogger(__name__)

# an instance's item, kept in its row's context (the dispatch pass reads it with the row)
ITEM = "FanOutItem"
# the step's items while it runs (its context becomes the aggregate when it ends)
ITEMS = "FanOutItems"
_RUNNING = [TaskState.READY, TaskState.STARTED, TaskState.EXECUTING]
_FAILED = [TaskState.FAILED, TaskState.CANCELLED]


def fan_out_of(spec: TaskSpec | None) -> fanout.FanOut | None:
    """The task's fan-out (validated at upload), or None."""
    return fanout.FanOut.parse(spec.fan_out) if spec is not None and spec.fan_out else None


def runs_on_queen(task_type: str, spec: TaskSpec) -> bool:
    """The row is run by the queen: a fan-out step itself, or a job instance."""
    return bool(spec.fan_out) and (task_type == spec.task_type or bool(spec.fan_out.get("fork_job_type")))


def with_item(data: dict[str, Any], fan: fanout.FanOut, context: dict[str, Any] | None) -> None:
    """An instance's template data: its item under ``item_var`` (over everything else)."""
    data[fan.item_var] = (context or {}).get(ITEM, "")


# -- the step starts ------------------------------------------------------------------------------


def start_step(
    task: TaskExecution, request: JobRequest, execution: JobExecution, spec: TaskSpec, data: dict[str, Any],
    whole: JobSpec,
) -> bool:  # fmt: skip
    """Run a READY fan-out step (inside the caller's transaction); False when another queen took
    it first."""
    attempt = transitions.task_dispatch(task.pk, request.pk, QUEEN_ANT, task.attempt)
    if attempt is None:
        return False
    if request.job_state != JobState.EXECUTING:
        transitions.job_executing(request.pk, execution.pk)
    transitions.task_executing(task.pk, request.pk, attempt)
    fan = fan_out_of(spec)
    assert fan is not None
    try:
        items = fanout.items_of({**whole.job_variables, **data}, fan.source)
    except fanout.FanOutError as exc:
        task.attempt, task.task_state = attempt, TaskState.EXECUTING
        _end_step(task, request, execution, fan, TaskState.FAILED, "ERR_FAN_OUT_SOURCE", str(exc), {})
        return True
    texts = [fanout.item_text(item) for item in items]
    TaskExecution.objects.filter(pk=task.pk).update(context={ITEMS: texts})  # not a state: its data
    _remember_count((execution.pk, task.task_type), len(texts))
    existing: dict[int, str] = dict(
        TaskExecution.objects.filter(job_execution_id=execution.pk, fan_out_of=task.task_type).values_list(
            "fan_out_index", "task_state"
        )  # type: ignore[arg-type]  # an instance's index is never null
    )
    # a revisit of the step (a retry, RESTART_TASK, a loop) runs only what did not complete
    rerun = [
        i for i in fanout.to_restart([fanout.Instance(i, s) for i, s in existing.items()]) if i < len(texts)
    ]
    transitions.instances_rerun(request.pk, {
        pk: {ITEM: texts[i or 0]} for pk, i in TaskExecution.objects.filter(
            job_execution_id=execution.pk, fan_out_of=task.task_type, fan_out_index__in=rerun
        ).values_list("pk", "fan_out_index")
    })  # fmt: skip
    if execution.reuse_execution_id and not existing:
        _reuse(task, request.pk, execution.reuse_execution_id, len(texts))
    progress(execution.pk, request, execution, graph_of(request.job_definition_id), task.task_type)
    return True


def _reuse(step: TaskExecution, request_id: int, reused_execution_id: int, count: int) -> None:
    """A restarted job's step keeps the instances its last execution completed (``to_restart``
    runs the others)."""
    done = {
        index: (exit_code, context)
        for index, exit_code, context in TaskExecution.objects.filter(
            job_execution_id=reused_execution_id, fan_out_of=step.task_type,
            task_state__in=[TaskState.COMPLETED, TaskState.SKIPPED], fan_out_index__lt=count,
        ).values_list("fan_out_index", "exit_code", "context")
    }  # fmt: skip
    if done:
        rows = [
            (i or 0, str(TaskState.COMPLETED), code, context) for i, (code, context) in sorted(done.items())
        ]
        transitions.instances_create(step, request_id, rows)


# -- an instance ends -----------------------------------------------------------------------------


def instance_ended(
    task: TaskExecution, request: JobRequest, execution: JobExecution, graph: JobSpec, state: str,
    exit_code: str | None, error_code: str = "", error_message: str = "", rule: ErrorRule | None = None,
) -> str | None:  # fmt: skip
    """An instance ended (written by the caller): a retry as its step's retry settings say
    (None), else its step's task type, whose ``progress`` the caller runs once per round."""
    spec = task_of(graph, task.task_type)
    if spec is None:
        return None
    if state == TaskState.FAILED:
        decision = policy.decide(follow.snapshot(task, request, execution, graph, spec, state, exit_code,
                                                 error_code, error_message, rule))  # fmt: skip
        if isinstance(decision.action, policy.RetryTask):
            follow.carry_out(
                policy.Decision(decision.action, decision.task_state), task, request.pk, execution, graph
            )
            return None
    return task.fan_out_of


def progress(
    execution_id: int, request: JobRequest, execution: JobExecution, graph: JobSpec, step_type: str
) -> None:
    """Where a running step stands (inside the caller's transaction, its row locked first): the
    next instances start, ``fail_fast`` cancels the running ones, and the step ends with its
    aggregate once none runs. One count per step, whatever the number of instances."""
    found, counts = _lock_and_count(execution_id, step_type)
    spec = task_of(graph, step_type)
    fan = fan_out_of(spec)
    if found is None or found[1] != TaskState.EXECUTING or spec is None or fan is None:
        return
    total = _item_count(execution_id, step_type)
    created = sum(counts.values())
    running = sum(counts.get(s, 0) for s in _RUNNING)
    cut = fan.fail_fast and any(counts.get(s, 0) for s in _FAILED)
    if running and not cut and (created >= total or (fan.max_parallel and running >= fan.max_parallel)):
        return  # the common case, one instance of many ended: two small statements, nothing loaded
    step = TaskExecution.objects.only(
        "id", "organization_id", "job_execution", "task_type", "method", "task_state", "attempt", "retried",
        "allow_failure", "task_order", "context",
    ).get(pk=found[0])  # fmt: skip
    if fan.mode == "job":
        step.method = "FORK_JOB"  # its instances are queen tasks watching their child job
    texts: list[str] = (step.context or {}).get(ITEMS) or []
    if cut and running:
        _cancel_running(execution_id, request.pk, step_type)
        running = 0
    if not cut and created < len(texts):
        room = len(texts) - created if not fan.max_parallel else max(fan.max_parallel - running, 0)
        if room:
            have = set(
                TaskExecution.objects.filter(job_execution_id=execution_id, fan_out_of=step_type).values_list(
                    "fan_out_index", flat=True
                )
            ) if created else set()  # fmt: skip
            new = [i for i in range(len(texts)) if i not in have][:room]
            transitions.instances_create(
                step, request.pk, [(i, str(TaskState.READY), "", {ITEM: texts[i]}) for i in new]
            )
            created += len(new)
            running += len(new)
    if running or (not cut and created < len(texts)):
        return
    instances = _instances(execution_id, step_type, len(texts))
    end = fanout.outcome(fan, instances, allow_failure=bool(spec.allow_failure))
    _end_step(step, request, execution, fan, TaskState(end.state), end.error_code, end.error_message,
              fanout.aggregate(fan, instances), graph)  # fmt: skip


def _lock_and_count(execution_id: int, step_type: str) -> tuple[tuple[int, str] | None, dict[str, int]]:
    """The step's id and state, its row locked (on PostgreSQL) so one queen at a time decides
    about its instances, then its instances by state: a statement of its own after the lock, so
    it sees every instance that ended before. On PostgreSQL both go in one round trip."""
    qn, table = connection.ops.quote_name, connection.ops.quote_name(TaskExecution._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    step_sql = (
        f"SELECT {qn('id')}, {qn('task_state')} FROM {table} "
        f"WHERE {qn('job_execution_id')} = %s AND {qn('task_type')} = %s{lock}"
    )
    count_sql = (
        f"SELECT {qn('task_state')}, COUNT(*) FROM {table} WHERE {qn('job_execution_id')} = %s "
        f"AND {qn('fan_out_of')} = %s GROUP BY {qn('task_state')}"
    )
    params: list[int | str] = [execution_id, step_type]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # client-side binding: two statements, one round trip
            cursor.execute(f"{step_sql}; {count_sql}", params * 2)
            row = cursor.fetchone()
            cursor.nextset()
        else:
            cursor.execute(step_sql, params)
            row = cursor.fetchone()
            cursor.execute(count_sql, params)
        counts = {state: n for state, n in cursor.fetchall()}
    return ((row[0], row[1]) if row else None), counts


def _item_count(execution_id: int, step_type: str) -> int:
    """How many items the running step has: remembered when this queen starts the step (its items
    do not change while it runs), else read once from the step's context."""
    key = (execution_id, step_type)
    if key not in _ITEM_COUNTS:
        context = TaskExecution.objects.filter(job_execution_id=execution_id, task_type=step_type).values_list(
            "context", flat=True
        ).first()  # fmt: skip
        _remember_count(key, len((context or {}).get(ITEMS) or []))
    return _ITEM_COUNTS[key]


def _remember_count(key: tuple[int, str], count: int) -> None:
    if len(_ITEM_COUNTS) > 10_000:
        _ITEM_COUNTS.clear()
    _ITEM_COUNTS[key] = count


_ITEM_COUNTS: dict[tuple[int, str], int] = {}


def _instances(execution_id: int, step_type: str, count: int) -> list[fanout.Instance]:
    found = {
        index: fanout.Instance(index or 0, state, exit_code, error_code, error_message,
                               {k: v for k, v in (context or {}).items() if k != ITEM})
        for index, state, exit_code, error_code, error_message, context in TaskExecution.objects.filter(
            job_execution_id=execution_id, fan_out_of=step_type, fan_out_index__lt=count
        ).values_list("fan_out_index", "task_state", "exit_code", "error_code", "error_message", "context")
    }  # fmt: skip
    return [found.get(i, fanout.Instance(i)) for i in range(count)]


def _cancel_running(execution_id: int, request_id: int, step_type: str) -> None:
    """``fail_fast``: the running siblings CANCELLED, stopped on their ants after the commit (job
    instances: their child jobs cancelled)."""
    running = list(
        TaskExecution.objects.filter(
            job_execution_id=execution_id, fan_out_of=step_type, task_state__in=_RUNNING
        ).values_list("pk", "context")
    )
    on_ants = transitions.tasks_cancel([execution_id], request_id, only=[pk for pk, _ in running])
    children = [ctx[forks.FORKED_ID] for _, ctx in running if (ctx or {}).get(forks.FORKED_ID)]
    if on_ants:  # the user's cancel path: the ants' answers free the queen's slots
        transaction.on_commit(lambda: cancel_on_ants(get_transport(), on_ants, request_id))
    if children:
        transaction.on_commit(
            lambda: _cancel_children(children, f"a sibling of fan-out step {step_type} failed")
        )


def _cancel_children(child_ids: Iterable[int], reason: str) -> None:
    from jobs.services.control import request_cancel  # services import the queen

    for child in JobRequest.objects.filter(pk__in=list(child_ids)).exclude(
        job_state__in=[s.value for s in JOB_TERMINAL]
    ):
        try:
            request_cancel(request=child, reason=reason)
        except Exception:  # it ended meanwhile: nothing to cancel
            log.info("child job %s was not cancelled", child.pk, exc_info=True)


def _end_step(
    step: TaskExecution, request: JobRequest, execution: JobExecution, fan: fanout.FanOut, state: TaskState,
    error_code: str, error_message: str, context: dict[str, Any], graph: JobSpec | None = None,
) -> None:  # fmt: skip
    """The step ends with its aggregate (promoted to the job context, as the reference does), and
    the policy routes from it."""
    exit_code = "0" if state == TaskState.COMPLETED else "1"
    if not transitions.task_finish(step.pk, request.pk, None, state, exit_code=exit_code, error_code=error_code,
                                   error_message=error_message, context=context):  # fmt: skip
        return
    if context:
        follow.merge_context(execution, context)
    graph = graph or graph_of(request.job_definition_id)
    # its instances have had the step's retries: the step itself is not retried again
    step.retried = 1 << 30
    follow.after_end(step, request, execution, graph, state, exit_code, error_code, error_message)


# -- job instances ---------------------------------------------------------------------------------


def start_child(task: TaskExecution, request: JobRequest, execution: JobExecution, spec: TaskSpec) -> bool:
    """A job instance starts its child job (inside the caller's transaction) and stays EXECUTING
    until ``check_children`` sees it end; False when another queen took it first."""
    attempt = transitions.task_dispatch(task.pk, request.pk, QUEEN_ANT, task.attempt)
    if attempt is None:
        return False
    fan = fan_out_of(spec)
    assert fan is not None
    item = (task.context or {}).get(ITEM, "")
    child = dataclasses.replace(
        spec, fork_job_type=fan.fork_job_type, fork_job_version=fan.fork_job_version,
        variables={**(spec.variables or {}), fan.item_var: item, "FanOutIndex": task.fan_out_index},
    )  # fmt: skip
    out = forks.fork(request, task, child)
    if out.state == TaskState.COMPLETED:
        transitions.child_started(task.pk, request.pk, attempt, {ITEM: item, **out.context})
        return True
    if transitions.task_finish(task.pk, request.pk, attempt, TaskState.FAILED, exit_code=out.exit_code,
                               error_code=out.error_code, error_message=out.error_message,
                               context={ITEM: item}):  # fmt: skip
        task.attempt = attempt
        graph = graph_of(request.job_definition_id)
        step = instance_ended(task, request, execution, graph, TaskState.FAILED, out.exit_code,
                              out.error_code, out.error_message)  # fmt: skip
        if step:
            progress(execution.pk, request, execution, graph, step)
    return True


def check_children() -> int:
    """Finish job instances whose child job has ended; their steps go on."""
    watching = list(
        TaskExecution.objects.filter(task_state=TaskState.EXECUTING, ant_id=QUEEN_ANT, method="FORK_JOB")
        .exclude(fan_out_of="")
        .values_list("pk", "context")
    )
    if not watching:
        return 0
    child_of = {pk: (ctx or {}).get(forks.FORKED_ID) for pk, ctx in watching}
    children = {
        c.pk: c
        for c in JobRequest.objects.filter(pk__in=[c for c in child_of.values() if c])
        .select_related("last_execution")
        .only("id", "job_state", "error_code", "error_message", "last_execution__context")
    }
    ended = [pk for pk, c in child_of.items() if c in children and children[c].job_state in JOB_TERMINAL]
    finished = 0
    for task in TaskExecution.objects.filter(pk__in=ended).select_related(
        "job_execution__job_request__job_definition"
    ):
        child = children[child_of[task.pk] or 0]
        execution = task.job_execution
        request = execution.job_request
        ok = child.job_state == JobState.COMPLETED
        state = TaskState.COMPLETED if ok else TaskState.FAILED
        context = {**(child.last_execution.context if child.last_execution else {}), **(task.context or {}),
                   "ForkedJobState": str(child.job_state)}  # fmt: skip
        message = "" if ok else f"child job {child.pk} {child.job_state}: {child.error_message}".strip(": ")
        with transaction.atomic():
            if not transitions.task_finish(task.pk, request.pk, task.attempt, state, exit_code="0" if ok else "1",
                                           error_code="" if ok else (child.error_code or "ERR_FORKED_JOB_FAILED"),
                                           error_message=message, context=context):  # fmt: skip
                continue
            graph = graph_of(request.job_definition_id)
            step = instance_ended(task, request, execution, graph, state, "0" if ok else "1",
                                  "" if ok else "ERR_FORKED_JOB_FAILED", message)  # fmt: skip
            if step:
                progress(execution.pk, request, execution, graph, step)
        finished += 1
    return finished
