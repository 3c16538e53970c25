"""The queen's work, in small steps the loop (and tests) call: schedule pending requests, send
ready tasks to ants, apply the ants' responses, and recover from timeouts and lost ants.

Decisions come from the pure core (``jobs.definition.dag``); every state change goes through
``jobs.queen.transitions``; messages go out only after the transaction that decided them commits.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ants.messaging.base import Transport
from ants.protocol import (
    ACTION_CANCEL,
    ACTION_EXECUTE,
    STATUS_CANCELLED,
    STATUS_COMPLETED,
    STATUS_EXECUTING,
    TaskRequest,
    TaskResponse,
)
from artifacts import services as artifact_services
from jobs.definition import dag
from jobs.definition.error_rules import SUSPEND_JOB, ErrorRule, job_retry_limit, task_retry_limit
from jobs.definition.errors import DefinitionError, Problem, TemplateError
from jobs.definition.model import JobSpec, TaskSpec
from jobs.definition.retries import retry_delay
from jobs.definition.template import budget
from jobs.models import JobDefinition, JobExecution, JobRequest, TaskExecution
from jobs.queen import batches, error_codes, forks, transitions
from jobs.queen.compiled import Compiled
from jobs.queen.context import secrets_and_values, template_data, template_data_of
from jobs.queen.render_pool import FAST_STEPS, RenderPool
from jobs.queen.resources import ResourceManager
from jobs.queen.rules import (
    HEAVY_TASK_FIELDS,
    JOB_RUNNING_VALUES,
    QUEEN_ANT,
    QUEEN_METHODS,
    RUNNING,
    method_of,
)
from jobs.queen.specs import (
    definition_text,
    graph_of,
    graph_spec,
    is_static,
    rendered_spec,
    task_of,
)
from jobs.states import JobState, TaskState

log = logging.getLogger(__name__)

# Grace on top of a task's own timeout before the queen gives up on the ant's answer.
TIMEOUT_GRACE_SECS = 30.0
# A task sent to an ant with room and not acknowledged this long after was lost on the way (see
# ``ResourceManager.may_hold`` for what makes the queen sure): it is sent again.
ACK_TIMEOUT_SECS = 5.0


@dataclass
class Outbox:
    """Messages decided inside a transaction, sent once it commits."""

    sends: list[tuple[str, TaskRequest]] = field(default_factory=list)

    def flush(self, transport: Transport) -> None:
        for ant_id, req in self.sends:
            transport.send_task(ant_id, req)
        self.sends.clear()


def _str_values(data: dict[str, Any]) -> dict[str, str]:
    return {
        k: v if isinstance(v, str) else str(v) for k, v in data.items() if isinstance(v, str | int | float)
    }


DISPATCH_LIMIT = 100  # READY tasks looked at per pass


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


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


# every pass runs them: compiled once (see jobs.queen.compiled)
_READY_TASKS = Compiled(lambda now: _ready_tasks(now)[:DISPATCH_LIMIT], "now")
_RUNNING_COUNTS = Compiled(
    lambda: JobRequest.objects.filter(job_state__in=JOB_RUNNING_VALUES)
    .values_list("organization_id", "job_type", "job_definition__max_concurrency")
    .annotate(n=Count("id"))
)


class Engine:
    def __init__(
        self,
        transport: Transport,
        resources: ResourceManager,
        *,
        clock: Callable[[], float] = time.time,
        ack_timeout_secs: float = ACK_TIMEOUT_SECS,
    ) -> None:
        self.transport = transport
        self.resources = resources
        self.clock = clock
        self.ack_timeout_secs = ack_timeout_secs
        self.started_at = clock()
        self._wait_reasons: dict[int, str] = {}
        # waiting READY task -> its tags as rendered with its request's data: the graph's are read
        # without params, so a templated `tags: ["{{.Region}}"]` would look for "<no value>"
        self._rendered_tags: dict[int, list[str]] = {}
        self._full_noted: dict[tuple[int, str], float] = {}
        # templates that take more than a few ms render in a worker process (render_pool.py)
        self.renders = RenderPool(transport.wake)

    # -- scheduling -------------------------------------------------------------------------------

    def _running_counts(self) -> dict[tuple[int, str], tuple[int, int]]:
        """(org, job type) -> (running requests, max_concurrency)."""
        counts: dict[tuple[int, str], tuple[int, int]] = {}
        for org_id, job_type, max_concurrency, n in _RUNNING_COUNTS.rows():
            running, _ = counts.get((org_id, job_type), (0, 0))
            counts[(org_id, job_type)] = (running + n, max_concurrency)
        return counts

    def schedule(self, limit: int = 50) -> int:
        """Start pending requests whose time has come: highest priority first, then oldest.

        Job types at their max_concurrency are left out of the query, so they never hold up
        the requests behind them.
        """
        now = timezone.now()
        counts = self._running_counts()
        full = [key for key, (running, limit_) in counts.items() if running >= limit_]
        qs = JobRequest.objects.filter(job_state=JobState.PENDING, scheduled_at__lte=now).filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now)
        )
        for org_id, job_type in full:
            qs = qs.exclude(organization_id=org_id, job_type=job_type)
        self._note_full(full, counts)
        candidates = []
        pick = (
            qs.select_related("job_definition").defer("job_definition__spec").order_by("-job_priority", "id")
        )
        for request in pick[:limit]:
            key = (request.organization_id, request.job_type)
            running, _ = counts.get(key, (0, request.job_definition.max_concurrency))
            limit_now = request.job_definition.max_concurrency
            if running >= limit_now:
                self._wait(
                    request, f"waiting: {running} of {limit_now} allowed {request.job_type} jobs are running"
                )
                continue
            if request.job_definition.disabled:
                self._wait(request, f"waiting: job type {request.job_type} is disabled")
                continue
            candidates.append(request)
            counts[key] = (running + 1, limit_now)
        started, rest = batches.start_requests(self, candidates)
        return started + sum(1 for request in rest if self.start_request(request))

    def types_at_limit(self) -> bool:
        """Some job type had requests waiting for its max_concurrency at the last look."""
        return bool(self._full_noted)

    def _note_full(self, full: list[tuple[int, str]], counts: dict[tuple[int, str], tuple[int, int]]) -> None:
        """Pending requests of a job type at its limit say so (at most twice a second per type)."""
        now = time.monotonic()
        for key in full:
            running, limit = counts[key]
            if now - self._full_noted.get(key, 0.0) < 0.5:
                continue
            self._full_noted[key] = now
            reason = f"waiting: {running} of {limit} allowed {key[1]} jobs are running"
            JobRequest.objects.filter(
                job_state=JobState.PENDING, organization_id=key[0], job_type=key[1]
            ).exclude(state_message=reason).update(state_message=reason)
        for key in list(self._full_noted):
            if key not in full:
                del self._full_noted[key]

    def _wait(self, request: JobRequest, reason: str, backoff_secs: float = 1.0) -> None:
        if request.state_message != reason or not request.not_before:
            secs = min(backoff_secs * (2 ** min(request.schedule_attempts, 3)), 5.0)
            transitions.request_wait(request.pk, reason, timezone.now() + timedelta(seconds=secs))

    def _first_tags(self, request: JobRequest, first: TaskSpec) -> list[str]:
        """The first task's tags rendered with the request's params and configs (the graph's
        own, read without them, when the definition has no template or does not render)."""
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

    def start_request(self, request: JobRequest) -> bool:
        definition = request.job_definition
        try:
            graph = graph_spec(definition.pk, definition.raw_yaml)
            first = dag.first_task(graph)
            if first is None:
                raise DefinitionError([Problem("the definition has no first task")])
        except DefinitionError as exc:
            with transaction.atomic():
                if transitions.request_claim(request.pk):
                    execution = transitions.execution_create(request)
                    transitions.job_finish(request.pk, execution.pk, JobState.FAILED,
                                           error_code="ERR_INVALID_DEFINITION", error_message=str(exc))  # fmt: skip
            return True
        org_id = request.organization_id
        first_method = method_of(first)
        first_tags = list(first.tags or [])
        if first_method not in QUEEN_METHODS and not self.resources.capable(first_method, first_tags, org_id):
            first_tags = self._first_tags(request, first)
        if first_method not in QUEEN_METHODS and not self.resources.capable(first_method, first_tags, org_id):
            self._wait(request, "waiting: " + self.resources.waiting_reason(first_method, first_tags, org_id))
            return False
        spec_or_error = self._start_render(request)
        if spec_or_error is None:
            return False
        with transaction.atomic():
            # the latest version's row serialises starts of one job type, so the count below
            # holds even with several schedulers (a leader handing over, or a forced restart)
            limit = (
                JobDefinition.objects.select_for_update()
                .filter(organization_id=org_id, job_type=request.job_type, is_latest=True)
                .values_list("max_concurrency", flat=True)
                .first()
            )
            limit = definition.max_concurrency if limit is None else limit
            running = JobRequest.objects.filter(
                organization_id=org_id, job_type=request.job_type, job_state__in=JOB_RUNNING_VALUES
            ).count()
            if running >= limit:
                self._wait(
                    request, f"waiting: {running} of {limit} allowed {request.job_type} jobs are running"
                )
                return False
            previous = request.last_execution_id
            if not transitions.request_claim(request.pk):
                return False
            execution = transitions.execution_create(request, reuse_execution_id=previous)
            if isinstance(spec_or_error, Exception):
                transitions.job_finish(request.pk, execution.pk, JobState.FAILED,
                                       error_code="ERR_INVALID_DEFINITION", error_message=str(spec_or_error))  # fmt: skip
                return True
            spec = spec_or_error
            if spec.is_skipped():
                transitions.job_finish(request.pk, execution.pk, JobState.FILTERED,
                                       error_message="skip_if is true: the request was filtered",
                                   from_states=[JobState.READY])  # fmt: skip
                return True
            transitions.task_ready(
                execution, first.task_type, first_method, allow_failure=bool(first.allow_failure), first=True
            )
        return True

    def _start_render(self, request: JobRequest) -> JobSpec | Exception | None:
        """The request's definition rendered for its start (before it is claimed, so a render
        in the worker leaves it PENDING), the error that fails it, or None while the worker
        renders it (the request waits a moment and is picked again)."""
        raw = request.job_definition.raw_yaml
        try:
            if is_static(raw):
                return rendered_spec(raw, {})  # renders the same with any data
            values, _ = secrets_and_values(request)
            urls = artifact_services.template_variables_of_requests([request]).get(request.pk, {})
            data = template_data_of(request, None, values, urls)
            spec = self.renders.render(("start", request.pk, request.last_execution_id), raw, data)
        except (DefinitionError, TemplateError) as exc:
            return exc
        if spec is None:
            self._wait(request, "waiting: its definition is being rendered", backoff_secs=0.1)
        return spec

    # -- dispatch ---------------------------------------------------------------------------------

    def dispatch_ready(self, limit: int = DISPATCH_LIMIT) -> int:
        """Send READY tasks to ants with room. Candidates are read as a few columns; only the
        tasks that go now are loaded in full (loading the whole READY backlog on every pass was
        most of the queen's work per task when requests queue up)."""
        now = timezone.now()
        if self.resources.all_full():
            # every ant is busy: only tasks the queen runs itself can go now, and tasks not yet
            # told why they wait
            noted = list(self._wait_reasons)
            not_told = ~Q(pk__in=noted) if len(noted) <= 1000 else Q(pk__in=[])
            rows = list(_ready_tasks(now).filter(Q(method__in=QUEEN_METHODS) | not_told)[:limit])
        else:
            rows = _READY_TASKS.rows(now=now)[:limit]
        # task id -> the ant reserved for it ("" when the one-at-a-time path decides)
        chosen: dict[int, str] = {}
        waiting: list[tuple[int, str, int, str]] = []
        for pk, task_type, request_id, job_state, org_id, definition_id in rows:
            graph_task = task_of(graph_of(definition_id), task_type)
            if job_state not in JOB_RUNNING_VALUES or graph_task is None:
                chosen[pk] = ""
                continue
            method = method_of(graph_task)
            tags = self._rendered_tags[pk] if pk in self._rendered_tags else list(graph_task.tags or [])
            if method in QUEEN_METHODS:
                chosen[pk] = QUEEN_ANT
                continue
            ant_id = self.resources.choose(method, tags, org_id)
            if (
                ant_id is None
                and pk not in self._rendered_tags
                and not is_static(definition_text(definition_id))
            ):
                chosen[pk] = ""  # its tags may be a template: the one-at-a-time path renders them
                continue
            if ant_id is None:
                waiting.append(
                    (pk, task_type, request_id, self.resources.waiting_reason(method, tags, org_id))
                )
                continue
            self.resources.reserve(ant_id, pk)
            chosen[pk] = ant_id
        self._note_waiting_many(waiting)
        if not chosen:
            return 0
        try:
            sent, rest = batches.dispatch_tasks(self, chosen)
        except Exception:
            log.exception("dispatching %s tasks together failed", len(chosen))
            for pk, ant_id in chosen.items():
                self.resources.unreserve(ant_id, pk)
            return 0
        for task in (
            TaskExecution.objects.select_related("job_execution__job_request__job_definition")
            .defer(*HEAVY_TASK_FIELDS)
            .filter(pk__in=rest, task_state=TaskState.READY)
            .order_by("id")
            if rest
            else []
        ):
            outbox = Outbox()
            try:
                sent += self._dispatch(task, outbox)
            except Exception:
                log.exception("dispatching task %s failed", task.pk)
                continue
            outbox.flush(self.transport)
        return sent

    def _dispatch(self, task: TaskExecution, outbox: Outbox) -> int:
        execution = task.job_execution
        request = execution.job_request
        if request.job_state == JobState.PAUSED:
            return 0  # it stays READY and runs when the job resumes
        if request.job_state not in JOB_RUNNING_VALUES:
            transitions.tasks_cancel([execution.pk], request.pk)
            return 0
        graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
        graph_task = task_of(graph, task.task_type)
        if graph_task is None:
            with transaction.atomic():
                transitions.task_finish_ready(task.pk, request.pk, TaskState.FAILED, error_code="ERR_UNKNOWN_TASK",
                                              error_message=f"task {task.task_type!r} is not in the definition")  # fmt: skip
                self._end_job(
                    request, execution, JobState.FAILED, "ERR_UNKNOWN_TASK", f"unknown task {task.task_type}"
                )
            return 0
        method = method_of(graph_task)
        values, secret_names = secrets_and_values(request)
        data = template_data(request, execution, values)
        problem: Exception | None = None
        spec: JobSpec | None = None
        try:
            # rendered before an ant is chosen: templated tags name their values
            spec = self.renders.render(("task", task.pk, task.attempt), request.job_definition.raw_yaml, data,
                                       task.task_type)  # fmt: skip
        except (DefinitionError, TemplateError) as exc:
            problem = exc
        if spec is None and problem is None:
            self._note_waiting(task.pk, task.task_type, request.pk, "its definition is being rendered")
            return 0
        rendered = (task_of(spec, task.task_type) if spec is not None else None) or graph_task
        ant_id = None
        if problem is None and method not in QUEEN_METHODS:
            tags = list(rendered.tags or [])
            ant_id = self.resources.choose(method, tags, request.organization_id)
            if ant_id is None:
                self._remember_tags(task.pk, tags)  # the next passes choose by them, unrendered
                reason = self.resources.waiting_reason(method, tags, request.organization_id)
                self._note_waiting(task.pk, task.task_type, request.pk, reason)
                return 0
        self._wait_reasons.pop(task.pk, None)
        self._rendered_tags.pop(task.pk, None)
        with transaction.atomic():
            if problem is not None:
                transitions.task_finish_ready(task.pk, request.pk, TaskState.FAILED,
                                              error_code="ERR_INVALID_DEFINITION", error_message=str(problem))  # fmt: skip
                self._end_job(request, execution, JobState.FAILED, "ERR_INVALID_DEFINITION", str(problem))
                return 0
            if rendered.is_skipped_by_except():
                if transitions.task_finish_ready(task.pk, request.pk, TaskState.SKIPPED, exit_code="SKIPPED"):
                    self._advance(task, request, execution, graph, TaskState.COMPLETED, "SKIPPED")
                return 0
            if self._reuse_completed(task, request, execution, graph, rendered):
                return 0
            if method in QUEEN_METHODS:
                self._run_queen_task(task, request, execution, rendered)
                return 1
            assert ant_id is not None
            attempt = transitions.task_dispatch(
                task.pk, request.pk, ant_id, task.attempt, self.resources.incarnation(ant_id)
            )
            if attempt is None:
                return 0
            if (
                request.job_state != JobState.EXECUTING
            ):  # the first task of the job (or its first after a resume)
                transitions.job_executing(request.pk, execution.pk)
            self.resources.reserve(ant_id, task.pk)
            outbox.sends.append((ant_id, self._task_request(task, request, execution, rendered, ant_id, attempt,
                                                            data, secret_names)))  # fmt: skip
        return 1

    def _reuse_completed(
        self,
        task: TaskExecution,
        request: JobRequest,
        execution: JobExecution,
        graph: JobSpec,
        spec: TaskSpec,
    ) -> bool:
        """A restarted or retried job keeps what its last execution completed (unless the task
        says ``allow_start_if_completed``, or the restart is hard)."""
        if not execution.reuse_execution_id or spec.allow_start_if_completed:
            return False
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
                self._merge_context(execution, done.context)
            self._advance(task, request, execution, graph, TaskState.COMPLETED, done.exit_code or None)
        return True

    def _merge_context(self, execution: JobExecution, values: dict[str, Any]) -> None:
        execution = JobExecution.objects.select_for_update().get(pk=execution.pk)
        JobExecution.objects.filter(pk=execution.pk).update(context={**execution.context, **values})

    def _remember_tags(self, task_id: int, tags: list[str]) -> None:
        if len(self._rendered_tags) > 100_000:  # tasks cancelled while waiting leave entries
            self._rendered_tags.clear()
        self._rendered_tags[task_id] = tags

    def _note_waiting(self, task_id: int, task_type: str, request_id: int, reason: str) -> None:
        self._note_waiting_many([(task_id, task_type, request_id, reason)])

    def _note_waiting_many(self, waiting: list[tuple[int, str, int, str]]) -> None:
        """Requests of tasks that wait for an ant say why: one UPDATE per distinct message."""
        by_message: dict[str, list[int]] = {}
        for task_id, task_type, request_id, reason in waiting:
            if self._wait_reasons.get(task_id) != reason:
                self._wait_reasons[task_id] = reason
                by_message.setdefault(f"task {task_type}: {reason}"[:500], []).append(request_id)
        for message, request_ids in by_message.items():
            JobRequest.objects.filter(pk__in=request_ids).update(state_message=message)

    def _task_request(
        self, task: TaskExecution, request: JobRequest, execution: JobExecution, spec: TaskSpec, ant_id: str,
        attempt: int, data: dict[str, Any], secret_names: set[str],
    ) -> TaskRequest:  # fmt: skip
        body = spec.to_wire()
        return TaskRequest(
            task_execution_id=task.pk,
            job_request_id=request.pk,
            job_execution_id=execution.pk,
            task_type=task.task_type,
            attempt=attempt,
            job_type=request.job_type,
            job_version=request.job_version,
            method=method_of(spec),
            organization_id=str(request.organization_id),
            user_id=str(request.user_id or ""),
            ant_id=ant_id,
            ant_started_at=self.resources.incarnation(ant_id) or 0.0,
            tags=list(spec.tags or []),
            timeout_secs=float(spec.timeout) if spec.timeout else None,
            spec={**body, "artifact_downloads": artifact_services.downloads_for(request, execution, spec)},
            variables=_str_values(data),
            secret_names=sorted(secret_names),
        )

    def _run_queen_task(self, task: TaskExecution, request: JobRequest, execution: JobExecution,
                        spec: TaskSpec) -> None:  # fmt: skip
        """Methods that need no ant: forking and awaiting child jobs."""
        attempt = transitions.task_dispatch(task.pk, request.pk, QUEEN_ANT, task.attempt)
        if attempt is None:
            return
        transitions.job_executing(request.pk, execution.pk)
        if spec.method == "FORK_JOB":
            self._queen_task_done(task, request, execution, forks.fork(request, task, spec))
        elif spec.method == "EXPIRE_ARTIFACTS":
            expired = artifact_services.artifacts_expire(organization_id=request.organization_id)
            outcome = forks.Outcome(TaskState.COMPLETED, exit_code="0", context={"ExpiredArtifacts": expired})
            self._queen_task_done(task, request, execution, outcome)
        elif spec.method == "AWAIT_FORKED_JOB":
            # it stays EXECUTING; check_awaits() finishes it when the children have ended
            transitions.task_executing(task.pk, request.pk, attempt)
        else:
            message = f"method {spec.method} is not supported by this queen"
            self._queen_task_done(task, request, execution, forks.Outcome(
                TaskState.FAILED, error_code="ERR_UNSUPPORTED_METHOD", error_message=message))  # fmt: skip

    def _queen_task_done(self, task: TaskExecution, request: JobRequest, execution: JobExecution,
                         outcome: "forks.Outcome") -> None:  # fmt: skip
        if not transitions.task_finish(task.pk, request.pk, None, outcome.state, exit_code=outcome.exit_code,
                                       error_code=outcome.error_code, error_message=outcome.error_message,
                                       context=outcome.context):  # fmt: skip
            return
        if outcome.context:
            self._merge_context(execution, outcome.context)
        graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
        self._advance(task, request, execution, graph, outcome.state, outcome.exit_code or None,
                      outcome.error_code, outcome.error_message)  # fmt: skip

    def check_awaits(self) -> int:
        """Finish AWAIT_FORKED_JOB tasks whose children have all ended."""
        done = 0
        for task in TaskExecution.objects.filter(
            task_state=TaskState.EXECUTING, method="AWAIT_FORKED_JOB", ant_id=QUEEN_ANT
        ).select_related("job_execution__job_request__job_definition"):
            execution = task.job_execution
            request = execution.job_request
            graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
            spec = task_of(graph, task.task_type)
            if spec is None:
                continue
            outcome = forks.await_forked(task, spec)
            if outcome is not None:
                with transaction.atomic():
                    self._queen_task_done(task, request, execution, outcome)
                done += 1
        return done

    def resume_due(self) -> int:
        """Jobs a PAUSE_JOB target paused for ``pause_time`` resume when it has passed."""
        due = JobRequest.objects.filter(job_state=JobState.PAUSED, not_before__lte=timezone.now())
        return sum(1 for pk in due.values_list("pk", flat=True) if transitions.job_resume(pk))

    # -- responses --------------------------------------------------------------------------------

    def apply_responses(self, responses: list[TaskResponse]) -> list[bool | None]:
        """Apply a read of ant responses: the plain ones together, the rest one at a time.
        A result per response: True applied, False stale or a duplicate, None failed (the caller
        leaves it unacknowledged, so it is applied again later)."""
        try:
            results, rest = batches.apply_responses(self, responses)
        except Exception:
            log.exception("applying %s responses together failed: one at a time", len(responses))
            results, rest = [None] * len(responses), list(range(len(responses)))
        for i in rest:
            try:
                results[i] = self.apply_response(responses[i])
            except Exception:
                log.exception("applying response for task %s failed", responses[i].task_execution_id)
                results[i] = None
        return results

    def apply_response(self, resp: TaskResponse) -> bool:
        """Apply one ant response; False when it was stale or a duplicate (nothing changed)."""
        if resp.action != ACTION_EXECUTE:
            return False  # a PING or container-listing reply, not a task result
        if resp.status == STATUS_EXECUTING:
            # one conditional UPDATE, no load: only the current attempt, still STARTED, moves
            return transitions.task_executing(resp.task_execution_id, resp.job_request_id, resp.attempt)
        task = (
            TaskExecution.objects.select_related("job_execution__job_request__job_definition")
            .defer(*HEAVY_TASK_FIELDS)
            .filter(pk=resp.task_execution_id)
            .first()
        )
        if task is None or resp.job_request_id != task.job_execution.job_request_id:
            log.warning("response for unknown task %s ignored", resp.task_execution_id)
            return False
        execution = task.job_execution
        request = execution.job_request
        state = {STATUS_COMPLETED: TaskState.COMPLETED, STATUS_CANCELLED: TaskState.CANCELLED}.get(
            resp.status, TaskState.FAILED
        )
        # an ErrorCode row matching the failure names its error code and may ask for an action
        rule = error_codes.rule_for_failure(task, request, resp) if state == TaskState.FAILED else None
        error_code = rule.error_code if rule is not None else resp.error_code
        with transaction.atomic():
            won = transitions.task_finish(
                task.pk, request.pk, resp.attempt, state,
                exit_code=resp.exit_code or "", exit_message=resp.exit_message[:10_000],
                error_code=error_code[:100], error_message=resp.error_message[:10_000],
                failed_command=resp.failed_command[:10_000], context=resp.task_context,
                stdout=resp.stdout[-100:], cost_factor=resp.cost_factor,
            )  # fmt: skip
            self.resources.release(task.ant_id, task.pk, resp.ran_secs)
            if not won:
                return False
            artifact_services.record_from_response(task, request, resp)
            if resp.task_context or resp.job_context:
                self._merge_context(execution, {**resp.job_context, **resp.task_context})
            if state == TaskState.CANCELLED:
                return True
            graph = graph_spec(request.job_definition_id, request.job_definition.raw_yaml)
            self._advance(task, request, execution, graph, state, resp.exit_code, error_code,
                          resp.error_message, rule=rule)  # fmt: skip
        return True

    def _advance(
        self, task: TaskExecution, request: JobRequest, execution: JobExecution, graph: JobSpec, state: TaskState,
        exit_code: str | None, error_code: str = "", error_message: str = "", rule: ErrorRule | None = None,
    ) -> None:  # fmt: skip
        """Decide what follows a finished task (inside the caller's transaction)."""
        request.refresh_from_db(fields=["job_state", "retried", "hard_reset"])
        if request.job_state not in JOB_RUNNING_VALUES and request.job_state != JobState.PAUSED:
            return
        spec_task = task_of(graph, task.task_type)
        assert spec_task is not None
        step = dag.next_step(spec_task, str(state), exit_code)
        # a repeat (EXECUTING target) keeps the attempt's own state: the task is requeued from it
        repeat = step.kind == "repeat"
        effective = (
            TaskState(step.task_state) if step.task_state in TaskState.__members__ and not repeat else state
        )
        if effective != state and state != TaskState.SKIPPED:
            transitions.task_override(task.pk, effective, step.error_code or error_code)
        failed = effective == TaskState.FAILED
        error_code = step.error_code or error_code
        now = timezone.now()
        rule = rule if failed else None
        no_retry = step.no_retry or (rule is not None and rule.no_retry)
        if rule is not None and rule.action == SUSPEND_JOB and step.kind in ("task", "end"):
            # the job waits for a person; when resumed, the failed task runs again
            transitions.task_requeue(task.pk, request.pk, from_states=[TaskState.FAILED], not_before=None,
                                     count_retry=False, reason=f"suspended by error code {rule.error_code}")  # fmt: skip
            transitions.job_pause(request.pk, f"suspended: {task.task_type} failed with {rule.error_code}")
            return
        if (
            failed
            and step.kind in ("task", "end")
            and not no_retry
            and task.retried < task_retry_limit(spec_task.retry or 0, rule)
        ):
            delay = timedelta(seconds=retry_delay(spec_task.retry_backoff_policy, spec_task.delay_between_retries,
                                                  task.retried))  # fmt: skip
            transitions.task_requeue(task.pk, request.pk, from_states=[TaskState.FAILED], not_before=now + delay,
                                     count_retry=True, reason=f"retry {task.retried + 1} of {spec_task.retry}")  # fmt: skip
            return
        if step.kind == "task":
            self._ready_next(execution, graph, step.task_type)
        elif step.kind in ("repeat", "restart_task"):
            delay = timedelta(seconds=spec_task.delay_between_retries or 0)
            transitions.task_requeue(task.pk, request.pk, from_states=[TaskState.COMPLETED, TaskState.FAILED,
                                     TaskState.SKIPPED], not_before=now + delay,
                                     count_retry=step.kind == "restart_task", reason=step.kind)  # fmt: skip
        elif step.kind == "restart_job":
            self._retry_job(request, execution, graph, "RESTART_JOB", force=True)
        elif step.kind == "pause_job":
            # the job waits pause_time, then goes on to the task's on_completed (if any)
            pause = timedelta(seconds=spec_task.pause_time or 0)
            transitions.job_pause(request.pk, f"paused by task {task.task_type}", resume_at=now + pause)
            if spec_task.on_completed and task_of(graph, spec_task.on_completed):
                self._ready_next(execution, graph, spec_task.on_completed)
        else:  # end of the path
            if execution.failed_task_type or step.job_state == JobState.FAILED:
                self._fail_path(task, request, execution, graph, error_code, error_message, no_retry, rule)
            else:
                self._end_job(request, execution, JobState.COMPLETED)

    def _ready_next(self, execution: JobExecution, graph: JobSpec, task_type: str) -> None:
        nxt = task_of(graph, task_type)
        assert nxt is not None, f"validated graphs only name known tasks ({task_type})"
        transitions.task_ready(
            execution, nxt.task_type, method_of(nxt), allow_failure=bool(nxt.allow_failure)
        )

    def _fail_path(
        self, task: TaskExecution, request: JobRequest, execution: JobExecution, graph: JobSpec, error_code: str,
        error_message: str, no_retry: bool, rule: ErrorRule | None = None,
    ) -> None:  # fmt: skip
        """The job has failed: run its always_run tasks not yet run, then retry or fail the job."""
        if not execution.failed_task_type:
            execution.failed_task_type = task.task_type
            JobExecution.objects.filter(pk=execution.pk).update(
                failed_task_type=task.task_type, error_code=error_code or "ERR_TASK_FAILED",
                error_message=error_message[:10_000],
            )  # fmt: skip
        executed = set(
            TaskExecution.objects.filter(job_execution=execution).exclude(task_state=TaskState.READY)
            .values_list("task_type", flat=True)
        )  # fmt: skip
        remaining = dag.always_run_tasks(graph, executed)
        if remaining:
            self._ready_next(execution, graph, remaining[0])
            return
        execution.refresh_from_db(fields=["error_code", "error_message"])
        if not no_retry and self._retry_job(request, execution, graph, "job retry", rule=rule):
            return
        self._end_job(request, execution, JobState.FAILED, execution.error_code or "ERR_TASK_FAILED",
                      execution.error_message or f"task {execution.failed_task_type} failed")  # fmt: skip

    def _retry_job(self, request: JobRequest, execution: JobExecution, graph: JobSpec, why: str,
                   force: bool = False, rule: ErrorRule | None = None) -> bool:  # fmt: skip
        limit = job_retry_limit(graph.retry or 0, rule)
        if request.retried >= limit and not (force and request.retried < max(limit, 3)):
            if force:
                self._end_job(request, execution, JobState.FAILED, "ERR_RESTART_LIMIT",
                              f"{why}: restarted {request.retried} times")  # fmt: skip
            return False
        delay = timedelta(
            seconds=retry_delay(graph.retry_backoff_policy, graph.delay_between_retries, request.retried)
        )
        every = graph.hard_reset_after_retries or 0
        hard = force or bool(every and (request.retried + 1) % every == 0)
        return transitions.job_requeue(request.pk, execution.pk, timezone.now() + delay,
                                       f"{why} {request.retried + 1}", hard=hard)  # fmt: skip

    def _end_job(self, request: JobRequest, execution: JobExecution, state: JobState, error_code: str = "",
                 error_message: str = "") -> None:  # fmt: skip
        transitions.job_finish(
            request.pk,
            execution.pk,
            state,
            error_code=error_code,
            error_message=error_message,
            from_states=[*JOB_RUNNING_VALUES, JobState.PAUSED],
        )

    # -- recovery ---------------------------------------------------------------------------------

    def cancel_tasks_on_ants(self, on_ants: list[tuple[int, str, int]], request_id: int) -> None:
        for task_id, ant_id, attempt in on_ants:
            if ant_id == QUEEN_ANT:
                continue
            self.resources.release(ant_id, task_id)
            self.transport.send_task(
                ant_id,
                TaskRequest(task_execution_id=task_id, job_request_id=request_id, task_type="", attempt=attempt,
                            action=ACTION_CANCEL, ant_id=ant_id),
            )  # fmt: skip

    def check_timeouts(self) -> int:
        """Jobs past their timeout fail; tasks an ant never answered are given up or sent again."""
        changed = 0
        now = timezone.now()
        # a scan of id, definition and start time per row: the graph comes from the version's
        # cached text, and models are loaded only for the rare row that times out (loading every
        # running request and task with its joins was a few percent of a busy queen)
        for request_id, definition_id, started_at in JobRequest.objects.filter(
            job_state=JobState.EXECUTING, last_execution__isnull=False
        ).values_list("pk", "job_definition_id", "last_execution__started_at"):
            graph = graph_of(definition_id)
            if not graph.timeout or started_at is None or (now - started_at).total_seconds() <= graph.timeout:
                continue
            request = (
                JobRequest.objects.select_related("job_definition", "last_execution")
                .defer("job_definition__spec", "last_execution__context")
                .get(pk=request_id)
            )
            execution = request.last_execution
            if request.job_state != JobState.EXECUTING or execution is None:
                continue
            with transaction.atomic():
                on_ants = transitions.tasks_cancel([execution.pk], request.pk)
                self._end_job(request, execution, JobState.FAILED, "ERR_JOB_TIMEOUT",
                              f"job timed out after {graph.timeout:g}s")  # fmt: skip
            self.cancel_tasks_on_ants(on_ants, request.pk)
            changed += 1
        running = TaskExecution.objects.filter(task_state__in=RUNNING).values_list(
            "pk", "task_type", "task_state", "started_at", "ant_id", "job_execution__job_request_id",
            "job_execution__job_request__job_definition_id",
        )  # fmt: skip
        for task_id, task_type, task_state, started_at, ant_id, request_id, definition_id in running:
            graph = graph_of(definition_id)
            spec_task = task_of(graph, task_type)
            age = (now - (started_at or now)).total_seconds()
            if spec_task and spec_task.timeout and age > spec_task.timeout + TIMEOUT_GRACE_SECS:
                task = (
                    TaskExecution.objects.select_related("job_execution__job_request__job_definition")
                    .defer(*HEAVY_TASK_FIELDS)
                    .get(pk=task_id)
                )
                request = task.job_execution.job_request
                with transaction.atomic():
                    message = (
                        f"task timed out after {spec_task.timeout:g}s (no answer from ant {task.ant_id})"
                    )
                    if transitions.task_finish(task.pk, request.pk, task.attempt, TaskState.FAILED,
                                               error_code="ERR_TASK_TIMEOUT", error_message=message):  # fmt: skip
                        self._advance(task, request, task.job_execution, graph, TaskState.FAILED, None,
                                      "ERR_TASK_TIMEOUT", message)  # fmt: skip
                self.cancel_tasks_on_ants([(task.pk, task.ant_id, task.attempt)], request.pk)
                changed += 1
            elif (
                task_state == TaskState.STARTED
                and age > self.ack_timeout_secs
                and started_at is not None
                and not self.resources.may_hold(ant_id, request_id, task_type, started_at.timestamp())
            ):
                # sent but never acknowledged by an ant with room: the message was lost (e.g. a
                # queen died before sending); on a busy ant it may be waiting for a slot
                if transitions.task_requeue(task_id, request_id, from_states=[TaskState.STARTED], not_before=None,
                                            count_retry=False, reason="no acknowledgement from the ant"):  # fmt: skip
                    self.resources.release(ant_id, task_id)
                    changed += 1
        return changed

    def recover_lost_tasks(self, ant_timeout_secs: float) -> int:
        """Tasks on ants that stopped heartbeating go back to READY and run elsewhere."""
        silent = set(self.resources.silent())
        self.resources.expire()
        if self.clock() - self.started_at < ant_timeout_secs:
            # just started: ants that are alive have not all been heard from yet
            lost_filter = Q(ant_id__in=list(silent))
        else:
            lost_filter = Q(ant_id__in=list(silent)) | ~Q(ant_id__in=[*self.resources.ants.keys(), QUEEN_ANT])
        changed = 0
        for task in (
            TaskExecution.objects.filter(task_state__in=RUNNING)
            .filter(lost_filter)
            .select_related("job_execution")
        ):
            if transitions.task_requeue(task.pk, task.job_execution.job_request_id, from_states=RUNNING,
                                        not_before=None, count_retry=False,
                                        reason=f"ant {task.ant_id} stopped answering"):  # fmt: skip
                log.warning("task %s was on lost ant %s: sending it again", task.pk, task.ant_id)
                changed += 1
        return changed

    def recover_restarted_ants(self, ant_ids: list[str]) -> int:
        """An ant heard with a new start time is a new process under the old id: the attempts sent
        to its earlier incarnation died with that one (it drops their requests when it reads
        them), so they go back to READY at once instead of holding its slots."""
        changed = 0
        for ant_id in ant_ids:
            current = self.resources.incarnation(ant_id)
            if current is None:
                continue
            earlier = Q(ant_started_at__isnull=False) & ~Q(ant_started_at=current)
            # attempts sent before incarnations were recorded: by when they were sent
            earlier |= Q(ant_started_at__isnull=True, started_at__lt=_at(current))
            for task_id, request_id in (
                TaskExecution.objects.filter(task_state__in=RUNNING, ant_id=ant_id)
                .filter(earlier)
                .values_list("pk", "job_execution__job_request_id")
            ):
                if transitions.task_requeue(task_id, request_id, from_states=RUNNING, not_before=None,
                                            count_retry=False, reason=f"ant {ant_id} restarted"):  # fmt: skip
                    log.warning(
                        "task %s was on ant %s before it restarted: sending it again", task_id, ant_id
                    )
                    self.resources.release(ant_id, task_id)
                    changed += 1
            self.resources.mark_recovered(ant_id, current)
        return changed

    def sync_reservations(self) -> None:
        running: dict[str, set[int]] = {}
        for task_id, ant_id in TaskExecution.objects.filter(task_state__in=RUNNING).values_list(
            "pk", "ant_id"
        ):
            running.setdefault(ant_id, set()).add(task_id)
        self.resources.sync_reservations(running)
