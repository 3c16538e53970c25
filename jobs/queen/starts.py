"""Start pending requests: one pipeline for one request or a whole pick.

Each request's first task must be one a live ant (or the queen) can run; its definition is
rendered before it is claimed (a render in the worker leaves it PENDING). Then, in one
transaction: the job types' concurrency is checked under a lock, the requests are claimed and
get their executions, and their first tasks become READY, or go straight to an ant with room
(created STARTED, sent after the commit: submit-to-start is one pass of the queen); a definition
that does not parse or render fails its request, a ``skip_if`` that holds filters it.
"""

from dataclasses import dataclass

from django.db import transaction

from artifacts import services as artifact_services
from jobs.definition import dag
from jobs.definition.errors import DefinitionError, Problem, TemplateError
from jobs.definition.model import JobSpec, TaskSpec
from jobs.definition.template import budget
from jobs.domain import fanouts, transitions
from jobs.domain.context import secrets_and_values, secrets_and_values_many, template_data, template_data_of
from jobs.domain.rules import QUEEN_METHODS, method_of
from jobs.domain.sends import Outbox, task_request
from jobs.domain.specs import graph_spec, is_static, rendered_spec, task_of
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.queen import dispatch, waiting
from jobs.queen.parts import QueenParts
from jobs.queen.render_pool import FAST_STEPS
from jobs.states import JobState

# what a templated start loaded: its configs and params, the secret names, artifact URLs
_Inputs = tuple[dict[str, str], set[str], dict[str, str]]


@dataclass
class _Start:
    request: JobRequest
    first: TaskSpec | None  # None: the definition is broken (``problem`` says why)
    method: str = ""
    problem: Exception | None = None


def start(parts: QueenParts, requests: list[JobRequest]) -> int:
    """Start what can start of ``requests`` (picked by priority, under their limits at the pick);
    returns how many started (a broken definition's request counts: it ended)."""
    starts: list[_Start] = []
    for request in requests:
        item = _first_task(request)
        if item.first is not None and not _runnable(parts, item):
            continue
        starts.append(item)
    inputs: dict[int, _Inputs] = {}
    specs = _render(parts, [s.request for s in starts if s.first is not None], inputs)
    starts = [s for s in starts if s.first is None or s.request.pk in specs]  # the others wait for the worker
    if not starts:
        return 0
    direct: dict[int, _Direct] = {}
    try:
        with transaction.atomic():
            chosen = _under_limits([s for s in starts if s.first is not None])
            broken = [s for s in starts if s.first is None]
            claimed = transitions.requests_claim([s.request.pk for s in chosen + broken])
            chosen = [s for s in chosen if s.request.pk in claimed]
            broken = [s for s in broken if s.request.pk in claimed]
            reuse = {pk: None if hard else last for pk, (hard, last) in claimed.items()}
            for s in chosen:  # the first tasks that go to an ant at once, each slot taken in turn
                spec, ran_before = specs[s.request.pk], claimed[s.request.pk][1] is not None
                # a request that ran before (it may reuse a run, or has artifacts of earlier runs)
                # or a forked child (its parent's artifact URLs) is the dispatcher's to send
                if (
                    isinstance(spec, JobSpec)
                    and not spec.is_skipped()
                    and not ran_before
                    and not s.request.parent_id
                ):
                    assert s.first is not None
                    first = task_of(spec, s.first.task_type) or s.first
                    ant_id = _ant_now(parts, s, first)
                    if ant_id:
                        parts.resources.reserve(ant_id, -s.request.pk)  # its task's id is not known yet
                        direct[s.request.pk] = _Direct(s, first, ant_id)
            executions = transitions.executions_create(
                [(s.request, reuse[s.request.pk]) for s in chosen] + [(s.request, None) for s in broken],
                executing=direct.keys(),
            )
            for s in broken:
                _fail(s.request, executions[s.request.pk].pk, s.problem)
            going = []
            for s in chosen:
                execution, spec = executions[s.request.pk], specs[s.request.pk]
                if isinstance(spec, Exception):
                    _fail(s.request, execution.pk, spec)
                elif spec.is_skipped():
                    transitions.job_finish(s.request.pk, execution.pk, JobState.FILTERED, from_states=[JobState.READY],
                                           error_message="skip_if is true: the request was filtered")  # fmt: skip
                elif s.request.pk not in direct:
                    assert s.first is not None
                    going.append((execution, s.first.task_type, s.method, bool(s.first.allow_failure), 0))
            transitions.tasks_create_ready(going)
            outbox = _send_first(parts, list(direct.values()), executions, inputs)
    finally:
        for request_id, d in direct.items():
            parts.resources.unreserve(d.ant_id, -request_id)
    outbox.flush(parts.transport)
    return len(chosen) + len(broken)


@dataclass
class _Direct:
    start: _Start
    first: TaskSpec  # rendered
    ant_id: str


def _ant_now(parts: QueenParts, s: _Start, first: TaskSpec) -> str | None:
    """The ant a new job's first task goes to in the start's own transaction, or None when it
    goes through READY and the dispatcher: when no ant has room, and for what the dispatcher
    treats apart (a task the queen runs, a fan-out, job resources, an ``except`` that skips it,
    a templated task with its own variables). A request that ran before, or a forked child, is
    left to the dispatcher by the caller (artifact URLs of earlier runs and of the parent are
    among its variables)."""
    method = method_of(first)
    if (
        # a templated task's own variables are template values too: the dispatcher renders it so
        (first.variables and not is_static(s.request.job_definition.raw_yaml))
        or method != s.method
        or method in QUEEN_METHODS
        or fanouts.runs_on_queen(first.task_type, first)
        or first.resources
        or (s.first is not None and s.first.resources)
        or first.is_skipped_by_except()
    ):
        return None
    return dispatch.choose(parts, method, list(first.tags or []), s.request.organization_id)


def _send_first(
    parts: QueenParts, direct: list[_Direct], executions: dict[int, JobExecution], inputs: dict[int, _Inputs]
) -> Outbox:
    """Create the first tasks of ``direct`` STARTED on their ants (their requests and executions
    went EXECUTING with ``executions_create``) and the messages to send after the commit: a
    started job's first task skips READY and the dispatcher's second load of what its start just
    loaded (submit-to-start: one pass of the queen instead of two, three row versions fewer)."""
    outbox = Outbox()
    if not direct:
        return outbox
    resources = parts.resources
    # a static definition's variables: configs and params (read only for requests the pick says
    # have configs; its params came with the pick)
    missing = [d.start.request for d in direct if d.start.request.pk not in inputs]
    for request_id, (values, secret_names) in secrets_and_values_many(missing).items():
        inputs[request_id] = (values, secret_names, {})
    rows = [
        (executions[d.start.request.pk], d.first.task_type, d.start.method, bool(d.first.allow_failure), d.ant_id,
         resources.incarnation(d.ant_id))
        for d in direct
    ]  # fmt: skip
    ids = transitions.tasks_create_started(rows)
    for d, task_id, row in zip(direct, ids, rows, strict=True):
        request, execution = d.start.request, row[0]
        resources.reserve(d.ant_id, task_id)
        values, secret_names, urls = inputs.get(request.pk, ({}, set(), {}))
        task = TaskExecution(id=task_id, organization_id=request.organization_id, job_execution=execution,
                             task_type=d.first.task_type, method=d.start.method, attempt=1, ant_id=d.ant_id)  # fmt: skip
        data = template_data_of(request, execution, values, urls)
        outbox.sends.append((d.ant_id, task_request(task, request, execution, d.first, d.ant_id, row[5], 1, data,
                                                    secret_names)))  # fmt: skip
    return outbox


def _first_task(request: JobRequest) -> _Start:
    definition = request.job_definition
    try:
        first = dag.first_task(graph_spec(definition.pk, definition.raw_yaml))
        if first is None:
            raise DefinitionError([Problem("the definition has no first task")])
    except DefinitionError as exc:
        return _Start(request, None, problem=exc)
    return _Start(request, first, method_of(first))


def _runnable(parts: QueenParts, item: _Start) -> bool:
    """The first task can run now: the queen runs it, or a live ant fits its tags (rendered with
    the request's data when the graph's own fit none); else the request says why it waits."""
    assert item.first is not None
    org_id, method = item.request.organization_id, item.method
    if method in QUEEN_METHODS or parts.resources.capable(method, list(item.first.tags or []), org_id):
        return True
    tags = _first_tags(item.request, item.first)
    if parts.resources.capable(method, tags, org_id):
        return True
    waiting.request_wait(item.request, "waiting: " + parts.resources.waiting_reason(method, tags, org_id))
    return False


def _first_tags(request: JobRequest, first: TaskSpec) -> list[str]:
    """The first task's tags rendered with the request's params and configs (the graph's own,
    read without them, when the definition has no template or does not render)."""
    raw = request.job_definition.raw_yaml
    if is_static(raw):
        return list(first.tags or [])
    try:
        values, _ = secrets_and_values(request)
        with budget(FAST_STEPS):  # a heavier template renders off the loop when the job starts
            rendered = task_of(rendered_spec(raw, template_data(request, None, values)), first.task_type)
    except (DefinitionError, TemplateError):
        return list(first.tags or [])  # the claim fails the job with the reason
    return list((rendered or first).tags or [])


def _render(
    parts: QueenParts, requests: list[JobRequest], inputs: dict[int, _Inputs]
) -> dict[int, JobSpec | Exception]:
    """Render each request's definition with its template data (loaded for all at once) before
    it is claimed: request id -> its spec or the error that fails it; what was loaded for the
    templated ones goes into ``inputs``. A template too heavy for the loop goes to the render
    worker; its request is left out, PENDING, and waits a moment."""
    templated = [r for r in requests if not is_static(r.job_definition.raw_yaml)]
    values = secrets_and_values_many(templated) if templated else {}
    # artifacts of earlier tasks: only a request that ran before (a retry, a restart) or a forked
    # child (its parent's) has any; a new request's start reads none
    with_urls = [r for r in templated if r.parent_id or r.last_execution_id]
    urls = artifact_services.template_variables_of_requests(with_urls) if with_urls else {}
    out: dict[int, JobSpec | Exception] = {}
    for request in requests:
        raw = request.job_definition.raw_yaml
        try:
            if is_static(raw):
                out[request.pk] = rendered_spec(raw, {})  # renders the same with any data
                continue
            inputs[request.pk] = (*values[request.pk], urls.get(request.pk, {}))
            data = template_data_of(request, None, values[request.pk][0], urls.get(request.pk, {}))
            spec = parts.renders.render(("start", request.pk, request.last_execution_id), raw, data)
        except (DefinitionError, TemplateError) as exc:
            out[request.pk] = exc
            continue
        if spec is None:
            waiting.request_wait(request, "waiting: its definition is being rendered", backoff_secs=0.1)
        else:
            out[request.pk] = spec
    return out


def _under_limits(starts: list[_Start]) -> list[_Start]:
    """Those that fit their job types' max_concurrency, counted under the definitions' lock."""
    if not starts:
        return []
    limits, running = waiting.locked_limits({(s.request.organization_id, s.request.job_type) for s in starts})
    chosen = []
    for s in starts:
        key = (s.request.organization_id, s.request.job_type)
        limit = limits.get(key, s.request.job_definition.max_concurrency)
        if waiting.over_limit(s.request, running.get(key, 0), limit):
            waiting.request_wait(
                s.request, waiting.concurrency_message(running.get(key, 0), limit, s.request.job_type)
            )
            continue
        running[key] = running.get(key, 0) + 1
        chosen.append(s)
    return chosen


def _fail(request: JobRequest, execution_id: int, problem: Exception | None) -> None:
    transitions.job_finish(request.pk, execution_id, JobState.FAILED, error_code="ERR_INVALID_DEFINITION",
                           error_message=str(problem))  # fmt: skip
