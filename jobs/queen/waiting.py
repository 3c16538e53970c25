"""Why work waits, said once: the concurrency rule, the "waiting: ..." messages of pending
requests, and the queen's memory of why each READY task waits for an ant."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from jobs import fastsql
from jobs.definition.fanout import INSTANCE_INFIX, step_of
from jobs.domain import transitions
from jobs.domain.rules import JOB_RUNNING_VALUES
from jobs.models import JobDefinition, JobRequest
from jobs.states import JobState

# Past this many remembered tasks (cancelled while waiting, they leave entries) the memory restarts.
MAX_REMEMBERED = 100_000


def concurrency_message(running: int, limit: int, job_type: str) -> str:
    return f"waiting: {running} of {limit} allowed {job_type} jobs are running"


def at_limit(running: int, limit: int) -> bool:
    """A job type may start another request only below its ``max_concurrency``."""
    return running >= limit


def over_limit(request: JobRequest, running: int, limit: int) -> bool:
    """``at_limit`` for this request: a running ancestor of the same job type lends it its slot
    (a parent under ``max_concurrency: 1`` forking its own job type would otherwise wait for a
    child that can never start); the others' still count. Read only at the limit."""
    if not at_limit(running, limit):
        return False
    return not request.parent_id or at_limit(running - lent_slots(request), limit)


def lent_slots(request: JobRequest) -> int:
    """How many of the request's ancestors of its job type (and organization) run now."""
    lent, parent_id, seen = 0, request.parent_id, set[int]()
    while parent_id and parent_id not in seen and len(seen) < 20:  # forks nest a few levels at most
        seen.add(parent_id)
        row = JobRequest.objects.filter(pk=parent_id).values_list(
            "parent_id", "organization_id", "job_type", "job_state"
        ).first()  # fmt: skip
        if row is None:
            break
        parent_id, org_id, job_type, state = row
        same = (org_id, job_type) == (request.organization_id, request.job_type)
        lent += 1 if same and state in JOB_RUNNING_VALUES else 0
    return lent


def _pairs(orgs: list[int], types: list[str]) -> Q:
    which = Q()
    for org_id, job_type in zip(orgs, types, strict=True):
        which |= Q(organization_id=org_id, job_type=job_type)
    return which


# every start runs them: compiled once per shape (jobs.fastsql.ByShape)
_LOCKED_LIMITS = fastsql.ByShape(
    lambda orgs, types: JobDefinition.objects.select_for_update()
    .filter(_pairs(orgs, types), is_latest=True)
    .values_list("organization_id", "job_type", "max_concurrency"),
    orgs=int, types=str,
)  # fmt: skip
_RUNNING = fastsql.ByShape(
    lambda orgs, types: JobRequest.objects.filter(_pairs(orgs, types), job_state__in=JOB_RUNNING_VALUES)
    .values_list("organization_id", "job_type")
    .annotate(n=Count("id")),
    orgs=int, types=str,
)  # fmt: skip


def locked_limits(
    keys: set[tuple[int, str]],
) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], int]]:
    """(org, job type) -> max_concurrency of its latest version, row locked, and -> how many of
    its requests run now. The lock serialises starts of one job type, so the counts hold even with
    several schedulers (a leader handing over, or a forced restart). Call inside a transaction."""
    ordered = sorted(keys)
    orgs, types = [k[0] for k in ordered], [k[1] for k in ordered]
    limits = {
        (org_id, job_type): limit for org_id, job_type, limit in _LOCKED_LIMITS.rows(orgs=orgs, types=types)
    }
    running = {(org_id, job_type): n for org_id, job_type, n in _RUNNING.rows(orgs=orgs, types=types)}
    return limits, running


def request_wait(request: JobRequest, reason: str, backoff_secs: float = 1.0) -> None:
    """A pending request that cannot start says why and is looked at again a little later (later
    each time, at most 5 s)."""
    if request.state_message != reason or not request.not_before:
        secs = min(backoff_secs * (2 ** min(request.schedule_attempts, 3)), 5.0)
        transitions.request_wait(request.pk, reason, timezone.now() + timedelta(seconds=secs))


def type_waits(org_id: int, job_type: str, running: int, limit: int) -> None:
    """Every pending request of a job type at its limit says so (one UPDATE)."""
    reason = concurrency_message(running, limit, job_type)
    JobRequest.objects.filter(job_state=JobState.PENDING, organization_id=org_id, job_type=job_type).exclude(
        state_message=reason
    ).update(state_message=reason)


@dataclass
class TaskWaits:
    """What this queen told the requests of READY tasks that wait for an ant, and the tags it
    rendered for them (the graph's are read without params, so a templated ``tags:
    ["{{.Region}}"]`` would look for "<no value>")."""

    reasons: dict[int, str] = field(default_factory=dict)
    tags: dict[int, list[str]] = field(default_factory=dict)

    def note(self, waiting: list[tuple[int, str, int, str]]) -> None:
        """(task id, task type, request id, reason) each: requests say why their task waits, one
        UPDATE per distinct message, only when it changed."""
        by_message: dict[str, list[int]] = {}
        for task_id, task_type, request_id, reason in waiting:
            if self.reasons.get(task_id) != reason:
                self.reasons[task_id] = reason
                # a fan-out's instances wait as their step: one message (and UPDATE) for them all
                step = step_of(task_type) if INSTANCE_INFIX in task_type else None
                by_message.setdefault(f"task {step or task_type}: {reason}"[:500], []).append(request_id)
        for message, request_ids in by_message.items():
            JobRequest.objects.filter(pk__in=request_ids).update(state_message=message)

    def remember_tags(self, task_id: int, tags: list[str]) -> None:
        if len(self.tags) > MAX_REMEMBERED:
            self.tags.clear()
        self.tags[task_id] = tags

    def forget(self, task_id: int) -> None:
        """The task goes: it no longer waits."""
        self.reasons.pop(task_id, None)
        self.tags.pop(task_id, None)
