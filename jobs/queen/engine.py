"""The queen's work, in small steps the loop (and tests) call: schedule pending requests, send
ready tasks to ants, apply the ants' responses, and recover from timeouts and lost ants.

Each step is one pipeline that takes one item or a whole pass alike (a single item is a batch of
one): ``starts`` (pending requests), ``dispatch`` (READY tasks), ``answers`` (ants' responses).
What follows a task's end is decided by the pure ``jobs.definition.policy`` and carried out by
``follow``; every state change goes through ``transitions``; messages go out only after the
transaction that decided them commits.
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ants.messaging.base import Transport
from ants.protocol import TaskResponse
from jobs.domain import approvals, fanouts, follow, transitions
from jobs.domain.context import param_rows, values_flags
from jobs.domain.rules import HEAVY_TASK_FIELDS, JOB_RUNNING_VALUES, QUEEN_ANT, RUNNING
from jobs.domain.sends import cancel_on_ants
from jobs.domain.specs import graph_of, task_of
from jobs.models import JobRequest, TaskExecution
from jobs.queen import answers, dispatch, queen_tasks, starts, waiting
from jobs.queen.compiled import Compiled, ShapeLoad
from jobs.queen.parts import QueenParts
from jobs.queen.render_pool import RenderPool
from jobs.queen.resources import ResourceManager
from jobs.queen.waiting import TaskWaits
from jobs.states import JobState, TaskState
from orgs import usage

log = logging.getLogger(__name__)

# Grace on top of a task's own timeout before the queen gives up on the ant's answer.
TIMEOUT_GRACE_SECS = 30.0
# A task sent to an ant with room and not acknowledged this long after was lost on the way (see
# ``ResourceManager.may_hold`` for what makes the queen sure): it is sent again.
ACK_TIMEOUT_SECS = 5.0
DISPATCH_LIMIT = dispatch.DISPATCH_LIMIT


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# every pass runs it: compiled once (see jobs.queen.compiled)
_RUNNING_COUNTS = Compiled(
    lambda: JobRequest.objects.filter(job_state__in=JOB_RUNNING_VALUES)
    .values_list("organization_id", "job_type", "job_definition__max_concurrency")
    .annotate(n=Count("id"))
)


def _pick_of(limit: int) -> ShapeLoad:
    """Pending requests due, highest priority first, then oldest, at most ``limit``, with their
    definitions, whether each has configs for its template data and variables, its params, and
    whether its organization has limits (most have none: then those queries are not sent); job
    types at their limit (``orgs``/``types`` pairs) left out: a running parent's children may use
    its slot. Every scheduling pass runs it: compiled once per shape, one round trip
    (``ShapeLoad``)."""
    if limit not in _PICKS:

        def pick(now: datetime, orgs: list[int], types: list[str]) -> QuerySet[JobRequest]:
            qs = JobRequest.objects.filter(job_state=JobState.PENDING, scheduled_at__lte=now).filter(
                Q(not_before__isnull=True) | Q(not_before__lte=now)
            )
            for org_id, job_type in zip(orgs, types, strict=True):
                qs = qs.exclude(organization_id=org_id, job_type=job_type, parent__isnull=True)
            return (
                qs.select_related("job_definition")
                .defer("job_definition__spec")
                .annotate(**values_flags(params=False), **usage.limits_flag(), param_rows=param_rows())
                .order_by("-job_priority", "id")[:limit]
            )

        _PICKS[limit] = ShapeLoad(pick, now=datetime, orgs=int, types=str)
    return _PICKS[limit]


_PICKS: dict[int, ShapeLoad] = {}


def prepare(most: int) -> None:
    """Compile the pipelines' loads for passes of up to ``most`` items (queen start)."""
    with transaction.atomic():  # the answer load locks rows: its SQL compiles in a transaction
        dispatch.prepare(most)
        answers.prepare(most)


class Engine:
    def __init__(
        self,
        transport: Transport,
        resources: ResourceManager,
        *,
        clock: Callable[[], float] = time.time,
        ack_timeout_secs: float = ACK_TIMEOUT_SECS,
    ) -> None:
        self.clock = clock
        self.ack_timeout_secs = ack_timeout_secs
        self.started_at = clock()
        self._full_noted: dict[tuple[int, str], float] = {}
        # templates that take more than a few ms render in a worker process (render_pool.py)
        self.parts = QueenParts(transport, resources, RenderPool(transport.wake), TaskWaits())

    @property
    def transport(self) -> Transport:
        return self.parts.transport

    @property
    def resources(self) -> ResourceManager:
        return self.parts.resources

    @property
    def renders(self) -> RenderPool:
        return self.parts.renders

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
        counts = self._running_counts()
        full = [key for key, (running, limit_) in counts.items() if waiting.at_limit(running, limit_)]
        self._note_full(full, counts)
        # (-1, ""): no job type is full, and the shape needs an item
        orgs, types = [k[0] for k in full] or [-1], [k[1] for k in full] or [""]
        candidates = []
        for request in _pick_of(limit).load(now=timezone.now(), orgs=orgs, types=types):
            key = (request.organization_id, request.job_type)
            limit_now = request.job_definition.max_concurrency
            running, _ = counts.get(key, (0, limit_now))
            if waiting.over_limit(request, running, limit_now):
                waiting.request_wait(
                    request, waiting.concurrency_message(running, limit_now, request.job_type)
                )
                continue
            if request.job_definition.disabled:
                waiting.request_wait(request, f"waiting: job type {request.job_type} is disabled")
                continue
            candidates.append(request)
            counts[key] = (running + 1, limit_now)
        candidates = usage.admit_starts(waiting.request_wait, candidates)  # organizations' and plans' limits
        return starts.start(self.parts, candidates)

    def start_request(self, request: JobRequest) -> bool:
        """Start one request (a batch of one); False when it cannot start now."""
        return starts.start(self.parts, [request]) == 1

    def types_at_limit(self) -> bool:
        """Some job type had requests waiting for its max_concurrency at the last look."""
        return bool(self._full_noted)

    def _note_full(self, full: list[tuple[int, str]], counts: dict[tuple[int, str], tuple[int, int]]) -> None:
        """Pending requests of a job type at its limit say so (at most twice a second per type)."""
        now = time.monotonic()
        for key in full:
            if now - self._full_noted.get(key, 0.0) < 0.5:
                continue
            self._full_noted[key] = now
            waiting.type_waits(key[0], key[1], *counts[key])
        for key in list(self._full_noted):
            if key not in full:
                del self._full_noted[key]

    # -- dispatch ---------------------------------------------------------------------------------

    def dispatch_ready(self, limit: int = DISPATCH_LIMIT) -> int:
        """Send READY tasks to ants with room (``jobs.queen.dispatch``)."""
        return dispatch.dispatch_ready(self.parts, limit)

    def check_awaits(self) -> int:
        """Finish AWAIT_FORKED_JOB tasks and fan-out job instances whose children have ended."""
        return queen_tasks.check_awaits() + fanouts.check_children()

    def check_approval_deadlines(self) -> int:
        """MANUAL tasks past their SLA deadline: the policy's timeout action (jobs.domain.approvals)."""
        return approvals.check_deadlines()

    def resume_due(self) -> int:
        """Jobs a PAUSE_JOB target paused for ``pause_time`` resume when it has passed."""
        due = JobRequest.objects.filter(job_state=JobState.PAUSED, not_before__lte=timezone.now())
        return sum(1 for pk in due.values_list("pk", flat=True) if transitions.job_resume(pk))

    # -- responses --------------------------------------------------------------------------------

    def apply_responses(self, responses: list[TaskResponse]) -> list[bool | None]:
        """Apply a read of ant responses (``jobs.queen.answers``). A result per response: True
        applied, False stale or a duplicate, None failed (the caller leaves it unacknowledged,
        so it is applied again later)."""
        return answers.apply(responses, self.resources.release)

    def apply_response(self, resp: TaskResponse) -> bool:
        """Apply one ant response (a batch of one); False when it was stale or a duplicate. Raises
        when it failed, so the caller leaves it unacknowledged."""
        result = self.apply_responses([resp])[0]
        if result is None:
            raise RuntimeError(f"applying the response for task {resp.task_execution_id} failed (logged)")
        return result

    # -- recovery ---------------------------------------------------------------------------------

    def cancel_tasks_on_ants(self, on_ants: list[tuple[int, str, int]], request_id: int) -> None:
        cancel_on_ants(self.transport, on_ants, request_id, self.resources.release)

    def check_timeouts(self) -> int:
        """Jobs past their timeout fail; tasks an ant never answered are given up or sent again."""
        changed = 0
        now = timezone.now()
        # a scan of id, definition and start time per row: the graph comes from the version's
        # cached text, and models are loaded only for the rare row that times out (loading every
        # running request and task with its joins was a few percent of a busy queen)
        started_at: datetime | None  # here the last execution's, below a task's
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
                transitions.job_finish(request.pk, execution.pk, JobState.FAILED, error_code="ERR_JOB_TIMEOUT",
                                       error_message=f"job timed out after {graph.timeout:g}s",
                                       from_states=follow.ENDS_FROM)  # fmt: skip
            self.cancel_tasks_on_ants(on_ants, request.pk)
            changed += 1
        running = TaskExecution.objects.filter(task_state__in=RUNNING).values_list(
            "pk", "task_type", "task_state", "started_at", "ant_id", "job_execution__job_request_id",
            "job_execution__job_request__job_definition_id",
        )  # fmt: skip
        executing: set[tuple[str, int, str]] = set()
        for task_id, task_type, task_state, started_at, ant_id, request_id, definition_id in running:
            if task_state == TaskState.EXECUTING:
                executing.add((ant_id, request_id, task_type))
            graph = graph_of(definition_id)
            spec_task = task_of(graph, task_type)
            age = (now - (started_at or now)).total_seconds()
            if spec_task and spec_task.fan_out and task_type == spec_task.task_type:
                continue  # a fan-out step: its timeout is each instance's
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
                        follow.after_end(task, request, task.job_execution, graph, TaskState.FAILED, None,
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
            elif (
                task_state == TaskState.EXECUTING
                and started_at is not None
                and self.resources.answer_lost(ant_id, request_id, task_type, started_at.timestamp())
            ):
                # it ended on its ant, whose answer never arrived (lost with a database's last
                # commits in a crash, say): it runs again rather than hold its request forever
                if transitions.task_requeue(task_id, request_id, from_states=[TaskState.EXECUTING], not_before=None,
                                            count_retry=False, reason=f"ant {ant_id} ended it; its answer was lost"):  # fmt: skip
                    log.warning(
                        "task %s ended on ant %s without an answer: sending it again", task_id, ant_id
                    )
                    self.resources.release(ant_id, task_id)
                    changed += 1
        self.resources.keep_unlisted(executing)
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
