"""Retention: delete finished requests older than a cutoff, with everything that hangs off them.

What goes with a request: its params, executions, task executions, their log chunks and webhook
deliveries (database cascades), and its ARTIFACT and LOG artifacts, rows and stored objects
(the objects after each batch commits, as ``artifacts.services`` always does). UPLOAD and CACHE
artifacts stay (their own expiry governs them; a cache serves later requests of the job type);
their link to the request is cleared.

Only finished requests (COMPLETED, FAILED, CANCELLED, FILTERED) whose last change is older than
the cutoff go, and none with an unfinished forked child (deleting the parent would write the
child's row). Batches are small, oldest first, each its own short transaction that locks its
requests with ``SKIP LOCKED``: a request the queen (or a user's restart) holds at that moment is
left for the next run, and nothing the queen works on waits behind a prune.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from artifacts.models import Artifact
from artifacts.services import artifacts_delete_of_requests
from jobs.domain import finished_counts
from jobs.models import JobRequest
from jobs.states import JOB_TERMINAL
from orgs import audit

log = logging.getLogger(__name__)

FINISHED = sorted(str(s) for s in JOB_TERMINAL)
PRUNED_ARTIFACT_KINDS = [Artifact.Kind.ARTIFACT, Artifact.Kind.LOG]
# a batch never waits this long for a row lock (PostgreSQL); it fails and the next run retries
LOCK_TIMEOUT = "2s"


@dataclass
class PruneResult:
    cutoff: datetime
    dry_run: bool
    requests: int = 0
    batches: int = 0
    deleted: dict[str, int] = field(default_factory=dict)  # model label -> rows

    def add(self, counts: dict[str, int]) -> None:
        for label, n in counts.items():
            if n:
                self.deleted[label] = self.deleted.get(label, 0) + n


def prunable(cutoff: datetime):  # type: ignore[no-untyped-def]
    """Finished requests last changed before ``cutoff`` without an unfinished child."""
    unfinished_child = JobRequest.objects.filter(parent_id=OuterRef("pk")).exclude(job_state__in=FINISHED)
    return (
        JobRequest.objects.filter(job_state__in=FINISHED, updated_at__lt=cutoff)
        .exclude(Exists(unfinished_child))
        .order_by("pk")
    )


def requests_prune(
    *, older_than: timedelta, batch_size: int = 500, dry_run: bool = False, now: datetime | None = None
) -> PruneResult:
    """Delete finished requests older than ``older_than`` in batches of ``batch_size``
    (``dry_run``: count them, delete nothing)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = (now or timezone.now()) - older_than
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        result.requests = prunable(cutoff).count()
        return result
    after = 0
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cur:
                    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # the id walk keeps each batch's scan short; rows locked elsewhere are skipped
            ids = list(
                prunable(cutoff)
                .filter(pk__gt=after)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            after = ids[-1]
            artifacts = artifacts_delete_of_requests(ids, PRUNED_ARTIFACT_KINDS)
            finished_counts.add(finished_counts.of_requests(ids), sign=-1)  # locked: as they are deleted
            _total, counts = JobRequest.objects.filter(pk__in=ids).delete()
            result.add({**counts, "artifacts.Artifact": artifacts + counts.get("artifacts.Artifact", 0)})
            result.requests += len(ids)
            result.batches += 1
    if result.requests:
        finished_counts.drop_empty()
        # one record per run: counts and the cutoff, nothing from the deleted rows
        audit.record(
            None, "JobRequest:Prune", object_type="JobRequest",
            summary=f"deleted {result.requests} finished requests last changed before {cutoff.isoformat()}",
            data={"cutoff": cutoff.isoformat(), "deleted": result.deleted},
        )  # fmt: skip
        log.info("retention: deleted %s finished requests before %s", result.requests, cutoff)
    return result
