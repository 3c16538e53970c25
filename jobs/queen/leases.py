"""Job resource leases: a task whose definition declares `resources` leases them before it is
sent, sees the leased resource's configs, and gives the lease back when it ends.

A lease is a ``JobResourceUse`` row for one attempt of one task (the attempt its dispatch
starts), so leases survive a queen restart and several queens share them. Taking one locks the
matching resources' rows (``SELECT ... FOR UPDATE``, in id order), so the sum of live leases
never exceeds a resource's quota however many queens dispatch at once.

A lease is live while its attempt is about to run or runs. It ends, without any call at the
task's end, as soon as its task has moved on: a final state (completed, failed, cancelled,
skipped, whatever ended it: an answer, a timeout, a cancel, a lost ant given up), back to READY
for another attempt (a retry, a lost ant), or a later attempt; or when the job ended; or when
``expires_at`` (its resource's ``lease_timeout``) passes first, which marks it ``aborted`` (the
task goes on, the units are free). Counting reads that live-ness; ``release_ended`` writes it
down: for a resource before a lease of it is added (under its lock), and for all every
housekeeping pass.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from jobs.definition.model import TaskSpec
from jobs.definition.resources import ResourceClaim, read_claim
from jobs.models import JobRequest, JobResource, JobResourceUse, TaskExecution
from jobs.states import JOB_TERMINAL, TASK_TERMINAL, TaskState

# the lease's attempt no longer runs nor is about to
ENDED = (
    Q(task_execution__task_state__in=[str(s) for s in TASK_TERMINAL])
    | Q(task_execution__attempt__gt=F("attempt"))
    | Q(task_execution__attempt=F("attempt"), task_execution__task_state=TaskState.READY)
    | Q(job_request__job_state__in=[str(s) for s in JOB_TERMINAL])
)


@dataclass
class Lease:
    """What a task holds: ``waiting`` says why it cannot go yet (empty: it may go)."""

    waiting: str = ""
    values: dict[str, str] = field(default_factory=dict)
    secret_names: set[str] = field(default_factory=set)
    resource_id: int | None = None

    def add_to(self, values: dict[str, str], secret_names: set[str]) -> None:
        """The resource's configs join the task's configs and params (and win over them)."""
        values.update(self.values)
        secret_names -= self.values.keys() - self.secret_names
        secret_names |= self.secret_names


def lease_for(task: TaskExecution, request: JobRequest, spec_task: TaskSpec) -> Lease:
    """The lease of the attempt ``task``'s next dispatch starts: the one it holds already, a new
    one, or why it waits. A task that declares no resources needs none."""
    claim = read_claim(spec_task.resources).claim
    if claim is None:
        return Lease()
    attempt = task.attempt + 1  # transitions.task_dispatch moves READY at n to STARTED at n + 1
    now = timezone.now()
    with transaction.atomic():
        candidates = _matching(request.organization_id, claim)
        if not candidates:
            return Lease(waiting=f"waiting for resource {claim.describe()}: none is defined and enabled")
        ids = [r.pk for r in candidates]
        # read-only while it waits (every dispatch pass asks again): live-ness is read, not written
        live = JobResourceUse.objects.filter(
            job_resource_id__in=ids, active=True, expires_at__gt=now
        ).exclude(ENDED)
        held = (
            live.filter(task_execution=task, attempt=attempt)
            .values_list("job_resource_id", flat=True)
            .first()
        )
        chosen = next((r for r in candidates if r.pk == held), None)
        if chosen is None:
            used = _used(live)
            chosen = next((r for r in candidates if used.get(r.pk, 0) + claim.value <= r.quota), None)
            if chosen is None:
                return Lease(waiting=_waiting(claim, candidates, used))
            release_ended(ids, now)  # what ended is written down before a lease is added
            JobResourceUse.objects.create(
                organization_id=request.organization_id, job_resource=chosen, job_request_id=request.pk,
                task_execution=task, attempt=attempt, user_id=request.user_id, value=claim.value,
                expires_at=now + timedelta(seconds=chosen.lease_timeout),
            )  # fmt: skip
        configs = list(chosen.configs.all())
    plain = {c.name: c.plain_value() for c in configs}
    visible = claim.visible(plain)
    secret = {claim.context_prefix + c.name for c in configs if c.secret} & visible.keys()
    return Lease(values=visible, secret_names=secret, resource_id=chosen.pk)


def _matching(org_id: int, claim: ResourceClaim) -> list[JobResource]:
    """Enabled resources the claim fits, locked (in id order: two queens never deadlock)."""
    qs = JobResource.objects.select_for_update().filter(
        organization_id=org_id, resource_type=claim.resource_type, disabled=False, valid_status=True
    )
    if claim.platform:
        qs = qs.filter(platform=claim.platform)
    wanted = set(claim.tags)
    return [r for r in qs.order_by("pk") if wanted <= {str(t).lower() for t in r.tags or []}]


def _used(live: QuerySet[JobResourceUse]) -> dict[int, int]:
    rows = (
        live.order_by().values("job_resource_id").annotate(n=Sum("value")).values_list("job_resource_id", "n")
    )
    return {resource_id: n or 0 for resource_id, n in rows}


def _waiting(claim: ResourceClaim, candidates: list[JobResource], used: dict[int, int]) -> str:
    leased = sum(used.get(r.pk, 0) for r in candidates)
    quota = sum(r.quota for r in candidates)
    needs = f"; needs {claim.value}" if claim.value > 1 else ""
    return f"waiting for resource {claim.describe()} ({leased} of {quota} leased{needs})"


def release_ended(resource_ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Mark leases that ended released (those past ``expires_at`` aborted); returns how many."""
    now = now or timezone.now()
    live = JobResourceUse.objects.filter(active=True)
    if resource_ids is not None:
        live = live.filter(job_resource_id__in=resource_ids)
    done = live.filter(expires_at__lte=now).update(
        active=False, aborted=True, released_at=now, updated_at=now
    )
    return done + live.filter(ENDED).update(active=False, released_at=now, updated_at=now)
