"""Send READY tasks to ants: one pipeline for one task or a whole pass.

Candidates are read as a few columns and an ant is reserved for each by the graph's method and
tags (``choose``); only the tasks that go now are loaded in full (loading the whole READY
backlog on every pass was most of the queen's work per task when requests queue up). Each is
rendered with the live data (outputs of earlier tasks, ``JobElapsedSecs``), its ant checked
against the rendered tags, and all of a pass are marked STARTED in a few statements; the
messages go after the commit. The unusual ones (a paused or ended job, a task not in the
definition, a template that fails, an ``except`` that skips it, a task a restart reuses, a task
the queen runs itself) are written one by one in their own transactions.
"""

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from artifacts import services as artifact_services
from artifacts.models import Artifact
from jobs.definition.errors import DefinitionError, TemplateError
from jobs.definition.model import TaskSpec
from jobs.domain import fanouts, follow, transitions
from jobs.domain.context import secrets_and_values_many, template_data_of, values_flags
from jobs.domain.rules import JOB_RUNNING_VALUES, QUEEN_ANT, QUEEN_METHODS, method_of
from jobs.domain.sends import Outbox, task_request
from jobs.domain.specs import definition_text, graph_of, graph_spec, is_static, task_of
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.queen import leases, queen_tasks
from jobs.queen.compiled import Compiled, CompiledLoad
from jobs.queen.parts import QueenParts
from jobs.states import JobState, TaskState

log = logging.getLogger(__name__)

DISPATCH_LIMIT = 100  # READY tasks looked at per pass
_E, _R = "job_execution__", "job_execution__job_request__"
DISPATCH_COLUMNS = (
    "id", "organization_id", "job_execution", "task_type", "method", "task_state", "attempt", "ant_id",
    f"{_E}id", f"{_E}organization_id", f"{_E}job_request", f"{_E}failed_task_type", f"{_R}id",
    f"{_R}organization_id", f"{_R}job_state", f"{_R}job_definition", f"{_R}job_type", f"{_R}user_id",
    f"{_E}context", f"{_E}reuse_execution", f"{_E}started_at", f"{_R}job_version",
    f"{_R}job_priority", f"{_R}job_group", f"{_R}user_key", f"{_R}retried", f"{_R}parent",
    "fan_out_of", "fan_out_index", "context",  # a fan-out instance's item is in its context
)  # fmt: skip


def _ready_tasks(now: datetime) -> QuerySet[TaskExecution, tuple[Any, ...]]:
    """READY tasks due, oldest first, as the few columns dispatching chooses an ant by."""
    return (
        TaskExecution.objects.filter(task_state=TaskState.READY)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .order_by("id")
        .values_list(
            "pk", "task_type", "job_execution__job_request_id", "job_execution__job_request__job_state",
            "job_execution__job_request__organization_id", "job_execution__job_request__job_definition_id",
        )
    )  # fmt: skip


# every pass runs it: compiled once (see jobs.queen.compiled)
_READY_TASKS = Compiled(lambda now: _ready_tasks(now)[:DISPATCH_LIMIT], "now")


class _TemplateFlags(TypedDict):
    has_org_configs: bool
    has_user_configs: bool
    has_job_configs: bool
    has_params: bool
    has_artifacts: bool


if TYPE_CHECKING:  # django-stubs-ext is a test dependency
    from django_stubs_ext import WithAnnotations

    # a task as _dispatch_load loads it: with whether its template data has anything to load
    LoadedTask = WithAnnotations[TaskExecution, _TemplateFlags]


def _dispatch_load(ids: list[int]) -> "QuerySet[TaskExecution]":
    """READY tasks of ``ids`` with what dispatching reads of their execution and request."""
    return (
        TaskExecution.objects.select_related("job_execution__job_request")
        .only(*DISPATCH_COLUMNS)
        .filter(pk__in=ids, task_state=TaskState.READY)
        # whether template data has anything to load: most tasks have no configs, params or
        # artifacts of earlier tasks, and then those queries are not sent at all
        .annotate(
            **values_flags(_R),
            has_artifacts=Exists(
                Artifact.objects.filter(
                    job_request_id=OuterRef("job_execution__job_request_id"), kind=Artifact.Kind.ARTIFACT
                )
            ),
        )
        .order_by("id")
    )


_DISPATCH_LOAD = CompiledLoad(_dispatch_load)


def prepare(most: int) -> None:
    """Compile the dispatch load for passes of up to ``most`` tasks (queen start)."""
    _DISPATCH_LOAD.prepare(most)


def dispatch_ready(parts: QueenParts, limit: int = DISPATCH_LIMIT) -> int:
    """Send READY tasks to ants with room; returns how many went (or ran on the queen)."""
    now = timezone.now()
    if parts.resources.all_full():
        # every ant is busy: only tasks the queen runs itself can go now, and tasks not yet
        # told why they wait
        noted = list(parts.waits.reasons)
        not_told = ~Q(pk__in=noted) if len(noted) <= 1000 else Q(pk__in=[])
        rows = list(_ready_tasks(now).filter(Q(method__in=QUEEN_METHODS) | not_told)[:limit])
    else:
        rows = _READY_TASKS.rows(now=now)[:limit]
    chosen: dict[int, str] = {}  # task id -> the ant reserved for it ("" to choose once rendered)
    waiting: list[tuple[int, str, int, str]] = []
    for pk, task_type, request_id, job_state, org_id, definition_id in rows:
        graph_task = task_of(graph_of(definition_id), task_type)
        if job_state not in JOB_RUNNING_VALUES or graph_task is None:
            chosen[pk] = ""
            continue
        method = method_of(graph_task)
        if method in QUEEN_METHODS or fanouts.runs_on_queen(task_type, graph_task):
            chosen[pk] = QUEEN_ANT
            continue
        remembered = parts.waits.tags.get(pk)
        tags = remembered if remembered is not None else list(graph_task.tags or [])
        ant_id = choose(parts, method, tags, org_id)
        if ant_id is None and remembered is None and not is_static(definition_text(definition_id)):
            chosen[pk] = ""  # its tags may be a template: chosen once rendered
        elif ant_id is None:
            waiting.append((pk, task_type, request_id, parts.resources.waiting_reason(method, tags, org_id)))
        else:
            parts.resources.reserve(ant_id, pk)  # the next tasks of this pass see the slot taken
            chosen[pk] = ant_id
    parts.waits.note(waiting)
    if not chosen:
        return 0
    try:
        return dispatch(parts, chosen)
    except Exception:
        log.exception("dispatching %s tasks failed", len(chosen))
        for pk, ant_id in chosen.items():
            parts.resources.unreserve(ant_id, pk)
        return 0


def choose(parts: QueenParts, method: str, tags: list[str], org_id: int) -> str | None:
    """The ant a task of ``method`` and ``tags`` goes to (the caller reserves its slot); None
    when no live ant has room. The one place an ant is picked for a task."""
    return parts.resources.choose(method, tags, org_id)


def _real(ant_id: str) -> bool:
    return ant_id not in ("", QUEEN_ANT)


def dispatch(parts: QueenParts, chosen: dict[int, str]) -> int:
    """Send the READY tasks of ``chosen`` (task id -> reserved ant, "" or the queen); returns
    how many went."""
    resources = parts.resources
    tasks = _DISPATCH_LOAD.load(sorted(chosen))
    for missing in set(chosen) - {t.pk for t in tasks}:
        resources.unreserve(chosen[missing], missing)
    live: list[LoadedTask] = []
    odd: list[tuple[str, TaskExecution, Any]] = []  # (what, task, detail): written one by one
    for task in tasks:
        request = task.job_execution.job_request
        if request.job_state in JOB_RUNNING_VALUES and task_of(
            graph_of(request.job_definition_id), task.task_type
        ):
            live.append(task)
            continue
        resources.unreserve(chosen[task.pk], task.pk)
        if request.job_state == JobState.PAUSED:
            continue  # it stays READY and runs when the job resumes
        odd.append(("cancel" if request.job_state not in JOB_RUNNING_VALUES else "unknown", task, None))
    values, urls = _template_inputs(live)
    going: list[tuple[TaskExecution, TaskSpec, str, dict[str, Any], set[str]]] = []
    waiting: list[tuple[int, str, int, str]] = []
    for task in live:
        request = task.job_execution.job_request
        graph_task = task_of(graph_of(request.job_definition_id), task.task_type)
        assert graph_task is not None
        request_values, secret_names = values.get(request.pk, ({}, set()))
        ant_id = chosen[task.pk]
        if graph_task.resources:  # job resources: a lease first, or the task waits (leases.py)
            lease = leases.lease_for(task, request, graph_task)
            if lease.waiting:
                if _real(ant_id):
                    resources.unreserve(ant_id, task.pk)
                waiting.append((task.pk, task.task_type, request.pk, lease.waiting))
                continue
            request_values, secret_names = dict(request_values), set(secret_names)
            lease.add_to(request_values, secret_names)
        data = template_data_of(request, task.job_execution, request_values, urls.get(request.pk, {}))
        fan = fanouts.fan_out_of(graph_task) if task.fan_out_of else None
        if fan is not None:
            fanouts.with_item(data, fan, task.context)
        try:
            # rendered before the ant is settled: templated tags name their values
            whole = parts.renders.render(("task", task.pk, task.attempt), definition_text(request.job_definition_id),
                                         data, graph_task.task_type)  # fmt: skip
        except (DefinitionError, TemplateError) as exc:
            resources.unreserve(ant_id, task.pk)
            odd.append(("problem", task, exc))
            continue
        if whole is None:  # in the render worker: the task stays READY until it is done
            resources.unreserve(ant_id, task.pk)
            waiting.append((task.pk, task.task_type, request.pk, "its definition is being rendered"))
            continue
        spec = task_of(whole, task.task_type) or graph_task
        method = method_of(graph_task)
        if spec.is_skipped_by_except() or (
            task.job_execution.reuse_execution_id
            and not spec.allow_start_if_completed
            and not task.fan_out_of
        ):
            resources.unreserve(ant_id, task.pk)
            odd.append(
                ("skip" if spec.is_skipped_by_except() else "reuse", task, (spec, data, secret_names, whole))
            )
            continue
        if fanouts.runs_on_queen(task.task_type, spec):
            odd.append(("fan_out", task, (spec, data, secret_names, whole)))
            continue
        if method in QUEEN_METHODS:
            odd.append(("queen", task, spec))
            continue
        tags, org_id = list(spec.tags or []), request.organization_id
        if not (
            _real(ant_id) and method_of(spec) == task.method and resources.fits(ant_id, method, tags, org_id)
        ):
            # tags rendered from a template the ant chosen by the graph's tags may lack
            if _real(ant_id):
                resources.unreserve(ant_id, task.pk)
            ant_id = choose(parts, method, tags, org_id) or ""
            if not ant_id:
                parts.waits.remember_tags(task.pk, tags)  # the next passes choose by them, unrendered
                waiting.append(
                    (task.pk, task.task_type, request.pk, resources.waiting_reason(method, tags, org_id))
                )
                continue
            resources.reserve(ant_id, task.pk)
            chosen[task.pk] = ant_id
        going.append((task, spec, ant_id, data, secret_names))
    parts.waits.note(waiting)
    sent = _send(parts, going)
    for what, task, detail in odd:
        try:
            with transaction.atomic():
                outbox = Outbox()
                sent += _one(parts, what, task, detail, outbox)
            outbox.flush(parts.transport)
        except Exception:
            log.exception("dispatching task %s failed", task.pk)
    return sent


def _template_inputs(tasks: "list[LoadedTask]") -> tuple[dict[int, Any], dict[int, Any]]:
    """The configs, params and artifact URLs the tasks' templates read, loaded for all at once and
    only for the requests that have some."""
    requests = {t.job_execution.job_request_id: t.job_execution.job_request for t in tasks}
    with_values = {
        t.job_execution.job_request_id
        for t in tasks
        if t.has_org_configs or t.has_user_configs or t.has_job_configs or t.has_params
    }
    with_urls = {
        t.job_execution.job_request_id
        for t in tasks
        if t.has_artifacts or requests[t.job_execution.job_request_id].parent_id
    }
    values = secrets_and_values_many([requests[r] for r in with_values]) if with_values else {}
    urls = (
        artifact_services.template_variables_of_requests([requests[r] for r in with_urls])
        if with_urls
        else {}
    )
    return values, urls


def _send(
    parts: QueenParts, going: list[tuple[TaskExecution, TaskSpec, str, dict[str, Any], set[str]]]
) -> int:
    """READY -> STARTED for all that go, in one transaction; the messages after the commit."""
    if not going:
        return 0
    resources, outbox = parts.resources, Outbox()
    with transaction.atomic():
        by_ant: dict[str, dict[int, int]] = {}
        for task, _, ant_id, _, _ in going:
            by_ant.setdefault(ant_id, {})[task.pk] = task.job_execution.job_request_id
        attempts: dict[int, int] = {}
        for ant_id, ids in by_ant.items():
            attempts.update(transitions.tasks_dispatch(ant_id, ids, resources.incarnation(ant_id)))
        first_tasks = {
            t.job_execution.job_request_id: t.job_execution_id
            for t, *_ in going
            if t.pk in attempts and t.job_execution.job_request.job_state != JobState.EXECUTING
        }
        transitions.jobs_executing(first_tasks)
        for task, spec, ant_id, data, secret_names in going:
            if task.pk not in attempts:
                resources.unreserve(ant_id, task.pk)
                continue
            parts.waits.forget(task.pk)
            request, execution = task.job_execution.job_request, task.job_execution
            outbox.sends.append((ant_id, task_request(task, request, execution, spec, ant_id, resources.incarnation(ant_id),
                                                      attempts[task.pk], data, secret_names)))  # fmt: skip
    sent = len(outbox.sends)
    outbox.flush(parts.transport)
    return sent


def _one(parts: QueenParts, what: str, task: TaskExecution, detail: Any, outbox: Outbox) -> int:
    """Write one unusual task (inside the caller's transaction); returns 1 if it went."""
    execution = task.job_execution
    request = execution.job_request
    if what == "cancel":
        transitions.tasks_cancel([execution.pk], request.pk)
        return 0
    if what in ("unknown", "problem"):
        code, message = (
            ("ERR_UNKNOWN_TASK", f"task {task.task_type!r} is not in the definition")
            if what == "unknown" else ("ERR_INVALID_DEFINITION", str(detail))
        )  # fmt: skip
        transitions.task_finish_ready(
            task.pk, request.pk, TaskState.FAILED, error_code=code, error_message=message
        )
        job_message = f"unknown task {task.task_type}" if what == "unknown" else message
        transitions.job_finish(request.pk, execution.pk, JobState.FAILED, error_code=code, error_message=job_message,
                               from_states=follow.ENDS_FROM)  # fmt: skip
        return 0
    parts.waits.forget(task.pk)
    graph = graph_spec(request.job_definition_id, definition_text(request.job_definition_id))
    if what == "skip":
        if transitions.task_finish_ready(task.pk, request.pk, TaskState.SKIPPED, exit_code="SKIPPED"):
            follow.after_end(task, request, execution, graph, TaskState.COMPLETED, "SKIPPED")
        return 0
    if what == "queen":
        return 1 if queen_tasks.run(task, request, execution, detail) else 0
    # a restarted or retried job keeps what its last execution completed
    spec, data, secret_names, whole = detail
    if what == "reuse" and _reuse_completed(task, request, execution):
        return 0
    if fanouts.runs_on_queen(task.task_type, spec):
        if task.fan_out_of:
            return 1 if fanouts.start_child(task, request, execution, spec) else 0
        return 1 if fanouts.start_step(task, request, execution, spec, data, whole) else 0
    if method_of(spec) in QUEEN_METHODS:
        return 1 if queen_tasks.run(task, request, execution, spec) else 0
    ant_id = choose(parts, method_of(spec), list(spec.tags or []), request.organization_id)
    if ant_id is None:
        reason = parts.resources.waiting_reason(
            method_of(spec), list(spec.tags or []), request.organization_id
        )
        parts.waits.note([(task.pk, task.task_type, request.pk, reason)])
        return 0
    attempt = transitions.task_dispatch(
        task.pk, request.pk, ant_id, task.attempt, parts.resources.incarnation(ant_id)
    )
    if attempt is None:
        return 0
    if request.job_state != JobState.EXECUTING:  # the first task of the job (or its first after a resume)
        transitions.job_executing(request.pk, execution.pk)
    parts.resources.reserve(ant_id, task.pk)
    outbox.sends.append((ant_id, task_request(task, request, execution, spec, ant_id,
                                              parts.resources.incarnation(ant_id), attempt, data, secret_names)))  # fmt: skip
    return 1


def _reuse_completed(task: TaskExecution, request: JobRequest, execution: JobExecution) -> bool:
    """The task completed in the execution this one reuses: its result is copied and the job
    goes on; False when it has to run."""
    done = TaskExecution.objects.filter(
        job_execution_id=execution.reuse_execution_id, task_type=task.task_type,
        task_state__in=[TaskState.COMPLETED, TaskState.SKIPPED],
    ).first()  # fmt: skip
    if done is None:
        return False
    reused = transitions.task_finish_ready(
        task.pk, request.pk, TaskState(done.task_state), exit_code=done.exit_code, exit_message=done.exit_message,
        context=done.context, stdout=done.stdout, ant_id=done.ant_id,
    )  # fmt: skip
    if reused:
        if done.context:
            follow.merge_context(execution, done.context)
        graph = graph_spec(request.job_definition_id, definition_text(request.job_definition_id))
        follow.after_end(task, request, execution, graph, TaskState.COMPLETED, done.exit_code or None)
    return True
