"""Reads of a run's fan-out instances for the request page, the timeline and the request's DOT.

An instance is a ``TaskExecution`` whose ``fan_out_of`` names its step (its own ``task_type`` is
``<step>-fo-<index>``); the step is a row of its own. A fan-out may have 10,000 items, so the
counts per state are aggregated in the database and only the first ``CHIPS`` instances of each
step (by item index) are loaded to be drawn one by one.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from jobs.models import TaskExecution

# instances drawn one by one per step; the rest are counted ("+N more")
CHIPS = 200
INSTANCE_FIELDS = (
    "pk", "task_type", "fan_out_of", "fan_out_index", "task_state", "exit_code", "error_code",
    "error_message", "attempt", "ant_id", "started_at", "ended_at", "earlier_attempts",
)  # fmt: skip


@dataclass(frozen=True)
class InstanceRow:
    """One instance as the page draws it."""

    pk: int
    task_type: str
    index: int
    state: str
    exit_code: str
    error_code: str
    error_message: str
    attempt: int
    ant_id: str
    started_at: datetime | None
    ended_at: datetime | None
    earlier_attempts: list[dict[str, Any]]


@dataclass
class FanOutGroup:
    """A fan-out step's instances in one run: how many in each state, and the first ones."""

    step: str
    counts: dict[str, int] = field(default_factory=dict)
    shown: list[InstanceRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def more(self) -> int:
        return max(self.total - len(self.shown), 0)


def instances_of(execution_id: int) -> Any:
    """Every instance row of the run; ``TaskExecution`` rows that are not instances are left out."""
    return TaskExecution.objects.filter(job_execution_id=execution_id).exclude(fan_out_of="")


def fan_out_counts(*, execution_id: int) -> dict[str, dict[str, int]]:
    """Per step, how many of its instances are in each state (one grouped query)."""
    rows = (
        instances_of(execution_id).order_by().values_list("fan_out_of", "task_state").annotate(n=Count("id"))
    )
    counts: dict[str, dict[str, int]] = {}
    for step, state, n in rows:
        counts.setdefault(step, {})[state] = n
    return counts


def fan_out_groups(*, execution_id: int, limit: int = CHIPS) -> dict[str, FanOutGroup]:
    """Each fan-out step of the run with its counts and its first ``limit`` instances by index:
    two queries whatever the number of instances."""
    groups = {
        step: FanOutGroup(step, counts) for step, counts in fan_out_counts(execution_id=execution_id).items()
    }
    if not groups:
        return groups
    ranked = (
        instances_of(execution_id)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("fan_out_of")], order_by=[F("fan_out_index").asc(), F("pk")]
            )
        )
        .filter(rank__lte=limit)
        .order_by("fan_out_of", "fan_out_index", "pk")
        .values(*INSTANCE_FIELDS)
    )
    for row in ranked:
        group = groups.get(row["fan_out_of"])
        if group is None:  # an instance created between the two queries
            continue
        group.shown.append(
            InstanceRow(
                pk=row["pk"], task_type=row["task_type"], index=row["fan_out_index"] or 0,
                state=row["task_state"], exit_code=row["exit_code"], error_code=row["error_code"],
                error_message=row["error_message"], attempt=row["attempt"], ant_id=row["ant_id"],
                started_at=row["started_at"], ended_at=row["ended_at"],
                earlier_attempts=[e for e in row["earlier_attempts"] or [] if isinstance(e, dict)],
            )
        )  # fmt: skip
    return groups
