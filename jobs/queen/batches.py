"""The queen's hot paths for many items at once: start pending requests, send ready tasks, apply
ants' answers.

Profiles showed the queen's time per task going to the ORM statements around it (about twenty per
task, each a round trip and its Python), not to decisions. These paths read a pass's items in one
query and write them in a few statements (``jobs.queen.transitions``, section "many at once").
Whatever is unusual (a failed or cancelled task, an exit-code route, a task the queen runs
itself, a restart reusing earlier results, a definition that does not parse, a paused job, two
answers of one job in a read) is handed back to the engine's one-at-a-time path, so every rule
lives in one place and these paths stay small.
"""

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ants.protocol import ACTION_EXECUTE, STATUS_CANCELLED, STATUS_COMPLETED, STATUS_EXECUTING, TaskResponse
from artifacts import services as artifact_services
from artifacts.models import Artifact
from jobs.definition import dag
from jobs.definition.errors import DefinitionError, TemplateError
from jobs.definition.model import JobSpec, TaskSpec
from jobs.models import JobConfig, JobDefinition, JobExecution, JobRequest, JobRequestParam, TaskExecution
from jobs.queen import transitions
from jobs.queen.compiled import CompiledLoad
from jobs.queen.context import secrets_and_values_many, template_data_of
from jobs.queen.rules import JOB_RUNNING_VALUES, QUEEN_ANT, QUEEN_METHODS, method_of
from jobs.queen.specs import (
    definition_text,
    graph_of,
    graph_spec,
    is_static,
    rendered_spec,
    task_of,
)
from jobs.states import JobState, TaskState
from orgs.models import OrgConfig, UserConfig

if TYPE_CHECKING:
    from jobs.queen.engine import Engine

log = logging.getLogger(__name__)
# The columns the batch paths read (loading four models' every column was most of a pass's
# time); the definition comes from jobs.queen.specs.graph_of, read once per version.
_E, _R = "job_execution__", "job_execution__job_request__"
_TASK = ("id", "organization_id", "job_execution", "task_type", "method", "task_state", "attempt", "ant_id")
ANSWER_COLUMNS = (
    *_TASK, f"{_E}id", f"{_E}organization_id", f"{_E}job_request", f"{_E}failed_task_type", f"{_R}id",
    f"{_R}organization_id", f"{_R}job_state", f"{_R}job_definition", f"{_R}job_type", f"{_R}user_id",
)  # fmt: skip
DISPATCH_COLUMNS = (
    *ANSWER_COLUMNS, f"{_E}context", f"{_E}reuse_execution", f"{_E}started_at", f"{_R}job_version",
    f"{_R}job_priority", f"{_R}job_group", f"{_R}user_key", f"{_R}retried", f"{_R}parent",
)  # fmt: skip


# -- starts ---------------------------------------------------------------------------------------


def start_requests(engine: "Engine", requests: list[JobRequest]) -> tuple[int, list[JobRequest]]:
    """Start requests whose first task an ant (or the queen) can run, in one transaction; returns
    how many started and the requests left to ``Engine.start_request`` (a definition that does
    not parse, a first task no live ant can run)."""
    simple: list[tuple[JobRequest, TaskSpec, str]] = []
    rest: list[JobRequest] = []
    for request in requests:
        definition = request.job_definition
        try:
            first = dag.first_task(graph_spec(definition.pk, definition.raw_yaml))
        except DefinitionError:
            rest.append(request)
            continue
        if first is None:
            rest.append(request)
            continue
        method = method_of(first)
        if method in QUEEN_METHODS or engine.resources.capable(method, first.tags, request.organization_id):
            simple.append((request, first, method))
        else:
            rest.append(request)
    specs = _render_starts(engine, [r for r, _, _ in simple])
    simple = [c for c in simple if c[0].pk in specs]  # the others wait for the render worker
    if not simple:
        return 0, rest
    with transaction.atomic():
        # the latest versions' rows serialise starts of their job types (as in start_request)
        types = {(r.organization_id, r.job_type) for r, _, _ in simple}
        which = Q()
        for org_id, job_type in types:
            which |= Q(organization_id=org_id, job_type=job_type)
        limits = {
            (org_id, job_type): limit
            for org_id, job_type, limit in JobDefinition.objects.select_for_update()
            .filter(which, is_latest=True)
            .values_list("organization_id", "job_type", "max_concurrency")
        }
        running = {
            (row["organization_id"], row["job_type"]): row["n"]
            for row in JobRequest.objects.filter(which, job_state__in=JOB_RUNNING_VALUES)
            .values("organization_id", "job_type")
            .annotate(n=Count("id"))
        }
        chosen: list[tuple[JobRequest, TaskSpec, str]] = []
        for request, first, method in simple:
            key = (request.organization_id, request.job_type)
            limit = limits.get(key, request.job_definition.max_concurrency)
            if running.get(key, 0) >= limit:
                engine._wait(request, f"waiting: {running.get(key, 0)} of {limit} allowed {request.job_type} jobs are running")  # fmt: skip
                continue
            running[key] = running.get(key, 0) + 1
            chosen.append((request, first, method))
        claimed = transitions.requests_claim([r.pk for r, _, _ in chosen])
        chosen = [c for c in chosen if c[0].pk in claimed]
        executions = transitions.executions_create(
            [(r, None if claimed[r.pk][0] else claimed[r.pk][1]) for r, _, _ in chosen]
        )
        rendered = _finish_starts([(r, executions[r.pk]) for r, _, _ in chosen], specs)
        transitions.tasks_create_ready(
            [
                (executions[r.pk], first.task_type, method, bool(first.allow_failure), 0)
                for r, first, method in chosen
                if rendered[r.pk]
            ]
        )
    return len(chosen), rest


def _render_starts(engine: "Engine", requests: list[JobRequest]) -> dict[int, JobSpec | Exception]:
    """Render each request's definition with its template data (loaded for all at once) before
    it is claimed: request id -> its spec or the error that fails it. A template too heavy for
    the loop goes to the render worker; its request is left out, PENDING, and waits a moment."""
    templated = [r for r in requests if not is_static(r.job_definition.raw_yaml)]
    values = secrets_and_values_many(templated) if templated else {}
    urls = artifact_services.template_variables_of_requests(templated) if templated else {}
    out: dict[int, JobSpec | Exception] = {}
    for request in requests:
        raw = request.job_definition.raw_yaml
        try:
            if is_static(raw):
                out[request.pk] = rendered_spec(raw, {})  # renders the same with any data
                continue
            data = template_data_of(request, None, values[request.pk][0], urls.get(request.pk, {}))
            spec = engine.renders.render(("start", request.pk, request.last_execution_id), raw, data)
        except (DefinitionError, TemplateError) as exc:
            out[request.pk] = exc
            continue
        if spec is None:
            engine._wait(request, "waiting: its definition is being rendered", backoff_secs=0.1)
        else:
            out[request.pk] = spec
    return out


def _finish_starts(
    starts: list[tuple[JobRequest, JobExecution]], specs: dict[int, JobSpec | Exception]
) -> dict[int, bool]:
    """Request id -> whether its first task goes on. One whose ``skip_if`` holds ends FILTERED,
    one whose template failed ends FAILED."""
    out: dict[int, bool] = {}
    for request, execution in starts:
        spec = specs[request.pk]
        if isinstance(spec, Exception):
            transitions.job_finish(request.pk, execution.pk, JobState.FAILED,
                                   error_code="ERR_INVALID_DEFINITION", error_message=str(spec))  # fmt: skip
            out[request.pk] = False
            continue
        if spec.is_skipped():
            transitions.job_finish(request.pk, execution.pk, JobState.FILTERED,
                                   error_message="skip_if is true: the request was filtered",
                                   from_states=[JobState.READY])  # fmt: skip
            out[request.pk] = False
            continue
        out[request.pk] = True
    return out


# -- dispatch -------------------------------------------------------------------------------------


def _dispatch_load(ids: list[int]) -> "QuerySet[TaskExecution]":
    """READY tasks of ``ids`` with what dispatching reads of their execution and request."""
    org, request_id = OuterRef("organization_id"), OuterRef("job_execution__job_request_id")
    return (
        TaskExecution.objects.select_related("job_execution__job_request")
        .only(*DISPATCH_COLUMNS)
        .filter(pk__in=ids, task_state=TaskState.READY)
        # whether template data has anything to load: most tasks have no configs, params or
        # artifacts of earlier tasks, and then those queries are not sent at all
        .annotate(
            has_org_configs=Exists(OrgConfig.objects.filter(organization_id=org)),
            has_user_configs=Exists(UserConfig.objects.filter(user_id=OuterRef(f"{_R}user_id"))),
            has_job_configs=Exists(
                JobConfig.objects.filter(
                    organization_id=org, job_type=OuterRef("job_execution__job_request__job_type")
                )
            ),
            has_params=Exists(JobRequestParam.objects.filter(job_request_id=request_id)),
            has_artifacts=Exists(
                Artifact.objects.filter(job_request_id=request_id, kind=Artifact.Kind.ARTIFACT)
            ),
        )
        .order_by("id")
    )


_DISPATCH_LOAD = CompiledLoad(_dispatch_load)


def dispatch_tasks(engine: "Engine", task_ids: dict[int, str]) -> tuple[int, list[int]]:
    """Send READY tasks to the ants chosen for them (task id -> ant id, reserved by the caller) in
    one transaction; returns how many went and the ids of tasks left to ``Engine._dispatch``."""
    tasks = _DISPATCH_LOAD.load(sorted(task_ids))
    for missing in set(task_ids) - {t.pk for t in tasks}:
        engine.resources.unreserve(task_ids[missing], missing)
    simple: list[TaskExecution] = []
    rest: list[int] = []
    for task in tasks:
        request = task.job_execution.job_request
        graph_task = task_of(graph_of(request.job_definition_id), task.task_type)
        ant_id = task_ids[task.pk]
        if (
            request.job_state in JOB_RUNNING_VALUES
            and graph_task is not None
            and ant_id not in ("", QUEEN_ANT)
            and not task.job_execution.reuse_execution_id
        ):
            simple.append(task)
        else:
            if ant_id not in ("", QUEEN_ANT):
                engine.resources.unreserve(ant_id, task.pk)  # the one-at-a-time path chooses again
            rest.append(task.pk)
    if not simple:
        return 0, rest
    requests = {t.job_execution.job_request_id: t.job_execution.job_request for t in simple}
    with_values = {
        t.job_execution.job_request_id
        for t in simple
        if t.has_org_configs or t.has_user_configs or t.has_job_configs or t.has_params
    }
    with_urls = {
        t.job_execution.job_request_id
        for t in simple
        if t.has_artifacts or t.job_execution.job_request.parent_id
    }
    values = secrets_and_values_many([requests[r] for r in with_values]) if with_values else {}
    urls = (
        artifact_services.template_variables_of_requests([requests[r] for r in with_urls])
        if with_urls
        else {}
    )
    going: list[tuple[TaskExecution, TaskSpec, dict[str, Any], set[str]]] = []
    for task in simple:
        request = task.job_execution.job_request
        request_values, secret_names = values.get(request.pk, ({}, set()))
        data = template_data_of(request, task.job_execution, request_values, urls.get(request.pk, {}))
        try:
            whole = engine.renders.render(("task", task.pk, task.attempt), definition_text(request.job_definition_id),
                                          data, task.task_type)  # fmt: skip
        except (DefinitionError, TemplateError):
            whole = None  # the one-at-a-time path fails the job with the reason
        else:
            if whole is None:  # in the render worker: the task stays READY until it is done
                engine.resources.unreserve(task_ids[task.pk], task.pk)
                continue
        spec = task_of(whole, task.task_type) if whole is not None else None
        if (
            spec is None
            or spec.is_skipped_by_except()
            or method_of(spec) != task.method
            # tags rendered from a template the ant chosen by the graph's tags may lack
            or not engine.resources.fits(
                task_ids[task.pk], task.method, list(spec.tags or []), request.organization_id
            )
        ):
            engine.resources.unreserve(task_ids[task.pk], task.pk)
            rest.append(task.pk)
            continue
        going.append((task, spec, data, secret_names))
    sends = []
    with transaction.atomic():
        by_ant: dict[str, dict[int, int]] = {}
        for task, *_ in going:
            by_ant.setdefault(task_ids[task.pk], {})[task.pk] = task.job_execution.job_request_id
        attempts: dict[int, int] = {}
        for ant_id, ids in by_ant.items():
            attempts.update(transitions.tasks_dispatch(ant_id, ids, engine.resources.incarnation(ant_id)))
        first_tasks = {
            t.job_execution.job_request_id: t.job_execution_id
            for t, *_ in going
            if t.pk in attempts and t.job_execution.job_request.job_state != JobState.EXECUTING
        }
        transitions.jobs_executing(first_tasks)
        for task, spec, data, secret_names in going:
            ant_id = task_ids[task.pk]
            if task.pk not in attempts:
                engine.resources.unreserve(ant_id, task.pk)
                continue
            request, execution = task.job_execution.job_request, task.job_execution
            engine._wait_reasons.pop(task.pk, None)
            engine._rendered_tags.pop(task.pk, None)
            sends.append((ant_id, engine._task_request(task, request, execution, spec, ant_id, attempts[task.pk],
                                                       data, secret_names)))  # fmt: skip
    engine.transport.send_tasks(sends)
    return len(sends), rest


# -- answers --------------------------------------------------------------------------------------


def apply_responses(engine: "Engine", responses: list[TaskResponse]) -> tuple[list[bool | None], list[int]]:
    """Apply ants' answers: EXECUTING ones in a statement per attempt number, final ones of tasks
    whose job simply goes on (next task or completed) in one transaction. Returns a result per
    answer (None: not handled here) and the indexes left to ``Engine.apply_response``."""
    results: list[bool | None] = [None] * len(responses)
    executing = [
        i for i, r in enumerate(responses) if r.action == ACTION_EXECUTE and r.status == STATUS_EXECUTING
    ]
    if executing:
        items = [
            (responses[i].task_execution_id, responses[i].job_request_id, responses[i].attempt)
            for i in executing
        ]
        transitions.tasks_executing(items)
        for i in executing:
            results[i] = True
    finals: dict[int, int] = {}
    rest: list[int] = []
    for i, resp in enumerate(responses):
        if results[i] is not None:
            continue
        if resp.action != ACTION_EXECUTE:
            results[i] = False  # a PING or container-listing reply, not a task result
        elif resp.task_execution_id in finals or resp.status == STATUS_CANCELLED:
            rest.append(i)
        else:
            finals[resp.task_execution_id] = i
    if finals:
        rest += _apply_finals(engine, responses, finals, results)
    return results, sorted(rest)


def _apply_finals(
    engine: "Engine", responses: list[TaskResponse], finals: dict[int, int], results: list[bool | None]
) -> list[int]:
    rest: list[int] = []
    with transaction.atomic():
        # locked: the state and attempt checked below hold until the updates
        tasks = {t.pk: t for t in _ANSWER_LOAD.load(finals)}
        per_request: dict[int, int] = {}
        for task in tasks.values():
            per_request[task.job_execution.job_request_id] = (
                per_request.get(task.job_execution.job_request_id, 0) + 1
            )
        finished: list[tuple[int, int, int, dict[str, Any]]] = []
        recorded: list[tuple[TaskExecution, JobRequest, TaskResponse]] = []
        completes: dict[int, int] = {}
        nexts: list[tuple[TaskExecution, TaskSpec]] = []
        now = timezone.now()
        for task_id, i in finals.items():
            resp, task = responses[i], tasks.get(task_id)
            if task is None or resp.job_request_id != task.job_execution.job_request_id:
                log.warning("response for unknown task %s ignored", task_id)
                results[i] = False
                continue
            current = task.task_state in (TaskState.STARTED, TaskState.EXECUTING) and (
                resp.attempt is None or resp.attempt == task.attempt
            )
            if not current:
                engine.resources.release(task.ant_id, task.pk)
                results[i] = False
                continue
            step = _simple_step(task, resp, per_request)
            if step is None:
                rest.append(i)
                continue
            request = task.job_execution.job_request
            finished.append((task.pk, request.pk, task.attempt, {
                "task_state": TaskState.COMPLETED, "exit_code": resp.exit_code or "",
                "exit_message": resp.exit_message[:10_000], "error_code": resp.error_code[:100],
                "error_message": resp.error_message[:10_000], "failed_command": resp.failed_command[:10_000],
                "context": resp.task_context, "stdout": resp.stdout[-100:], "cost_factor": resp.cost_factor,
                "ended_at": now, "updated_at": now,
            }))  # fmt: skip
            recorded.append((task, request, resp))
            if resp.task_context or resp.job_context:
                engine._merge_context(task.job_execution, {**resp.job_context, **resp.task_context})
            engine.resources.release(task.ant_id, task.pk, resp.ran_secs)
            if step.kind == "end":
                completes[request.pk] = task.job_execution_id
            else:
                nxt = task_of(
                    graph_of(request.job_definition_id),
                    step.task_type or "",
                )
                assert nxt is not None, f"validated graphs only name known tasks ({step.task_type})"
                nexts.append((task, nxt))
            results[i] = True
        transitions.tasks_finish(finished)
        artifact_services.record_from_responses(recorded)
        transitions.jobs_finish(completes, JobState.COMPLETED)
        _ready_next_tasks(nexts)
    return rest


def _answer_load(ids: list[int]) -> "QuerySet[TaskExecution]":
    """Answered tasks of ``ids`` with what applying reads of their execution and request, locked:
    the state and attempt checked hold until the updates."""
    return (
        TaskExecution.objects.select_for_update(of=("self",))
        .select_related("job_execution__job_request")
        .only(*ANSWER_COLUMNS)
        .filter(pk__in=ids)
    )


_ANSWER_LOAD = CompiledLoad(_answer_load)


def prepare(most: int) -> None:
    """Compile the dispatch and answer loads for batches of up to ``most`` tasks (queen start)."""
    with transaction.atomic():  # the answer load locks rows: its SQL compiles in a transaction
        _DISPATCH_LOAD.prepare(most)
        _ANSWER_LOAD.prepare(most)


def _simple_step(task: TaskExecution, resp: TaskResponse, per_request: dict[int, int]) -> dag.NextStep | None:
    """The next step when it is plain (completed, then the next task or the job's end), else None."""
    request = task.job_execution.job_request
    if (
        resp.status != STATUS_COMPLETED
        or per_request[request.pk] > 1
        or request.job_state not in JOB_RUNNING_VALUES
        or task.job_execution.failed_task_type
    ):
        return None
    spec = task_of(graph_of(request.job_definition_id), task.task_type)
    if spec is None:
        return None
    step = dag.next_step(spec, TaskState.COMPLETED, resp.exit_code)
    if step.task_state != TaskState.COMPLETED:
        return None
    if step.kind == "end" and step.job_state != JobState.FAILED:
        return step
    return step if step.kind == "task" else None


def _ready_next_tasks(nexts: list[tuple[TaskExecution, TaskSpec]]) -> None:
    """The next tasks READY: one INSERT for those the execution has not run yet; a revisit (a graph
    may loop back) makes the finished row READY again."""
    if not nexts:
        return
    existing: dict[int, set[str]] = {}
    counts: dict[int, int] = {}
    for execution_id, task_type in TaskExecution.objects.filter(
        job_execution_id__in={t.job_execution_id for t, _ in nexts}
    ).values_list("job_execution_id", "task_type"):
        existing.setdefault(execution_id, set()).add(task_type)
        counts[execution_id] = counts.get(execution_id, 0) + 1
    new: list[tuple[JobExecution, str, str, bool, int]] = []
    for task, nxt in nexts:
        execution = task.job_execution
        if nxt.task_type in existing.get(execution.pk, set()):
            transitions.task_ready(
                execution, nxt.task_type, method_of(nxt), allow_failure=bool(nxt.allow_failure)
            )
        else:
            new.append(
                (
                    execution,
                    nxt.task_type,
                    method_of(nxt),
                    bool(nxt.allow_failure),
                    counts.get(execution.pk, 0),
                )
            )
    transitions.tasks_create_ready(new)
