"""What a plan allows, decided without a database: the pure core of quota enforcement.

``orgs.usage`` reads limits and usage from the database and calls these; the queen's start step,
the submit service and artifact uploads act on the answers. 0 means no limit throughout.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

PERIOD_MONTHS = {"MONTHLY": 1, "SEMI_ANNUAL": 6, "ANNUAL": 12}


@dataclass(frozen=True)
class OrgLimits:
    """An organization's limits as the scheduler needs them."""

    name: str
    org_max_concurrency: int = 0  # Organization.max_concurrency
    plan_max_concurrency: int = 0  # the active subscription's max_concurrency
    policy: str = ""
    disk_quota: int = 0
    storage_used: int = 0

    @property
    def concurrency(self) -> tuple[int, str]:
        """The tighter of the two concurrency limits and where it comes from; (0, "") for none."""
        found = [(n, why) for n, why in ((self.org_max_concurrency, f"organization {self.name}'s max_concurrency"),
                 (self.plan_max_concurrency, f"the {self.policy} plan's max_concurrency")) if n > 0]  # fmt: skip
        return min(found, default=(0, ""))


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30,
                           31, 30, 31, 31, 30, 31, 30, 31][month - 1])  # fmt: skip
    return moment.replace(year=year, month=month, day=day)


def period_start(started_at: datetime, period: str, now: datetime) -> datetime:
    """The start of the plan period ``now`` falls in: periods follow each other from the
    subscription's start (WEEKLY: 7 days; MONTHLY, SEMI_ANNUAL, ANNUAL: calendar months)."""
    if now <= started_at:
        return started_at
    if period == "WEEKLY":
        return started_at + timedelta(days=7) * ((now - started_at) // timedelta(days=7))
    step = PERIOD_MONTHS.get(period, 1)
    months = ((now.year - started_at.year) * 12 + now.month - started_at.month) // step * step
    start = _add_months(started_at, months)
    while start > now:  # the day or hour of the month is not reached yet
        months -= step
        start = _add_months(started_at, months)
    return start


def cpu_refusal(*, cpu_quota: int, cpu_used: float, policy: str, since: datetime) -> str | None:
    """Why a submit is refused over the period's CPU quota, or None."""
    if cpu_quota <= 0 or cpu_used < cpu_quota:
        return None
    return (
        f"CPU quota exceeded: this organization used {cpu_used:.1f} CPU seconds since "
        f"{since.isoformat(timespec='seconds')}, the {policy} plan's cpu_quota is {cpu_quota}"
    )


def disk_refusal(*, disk_quota: int, used: int, adding: int, policy: str) -> str | None:
    """Why storing ``adding`` more bytes is refused over the storage quota, or None."""
    if disk_quota <= 0 or used + adding <= disk_quota:
        return None
    more = f" plus {adding} bytes uploaded" if adding else ""
    return (
        f"storage quota exceeded: this organization stores {used} bytes of artifacts{more}, "
        f"the {policy} plan's disk_quota is {disk_quota} bytes"
    )


def ants_refusal(*, max_ants: int, registered: int, policy: str) -> str | None:
    """Why one more ant is refused, or None."""
    if max_ants <= 0 or registered < max_ants:
        return None
    return f"ant limit reached: {registered} ants registered, the {policy} plan's max_ants is {max_ants}"


def admit(
    pending: Iterable[tuple[int, int]], running: Mapping[int, int], limits: Mapping[int, OrgLimits]
) -> tuple[list[int], dict[int, str]]:
    """Which of the requests about to start (request id, organization id), in priority order,
    may start now; the others' waiting reasons. An organization at its concurrency limit (the
    tighter of its own and its plan's) or over its storage quota starts nothing more."""
    counts = dict(running)
    admitted: list[int] = []
    waiting: dict[int, str] = {}
    for request_id, org_id in pending:
        org = limits.get(org_id)
        if org is None:
            admitted.append(request_id)
            continue
        if org.storage_used >= org.disk_quota > 0:
            waiting[request_id] = (
                f"waiting: artifact storage is full: {org.storage_used} of the {org.policy} plan's "
                f"disk_quota {org.disk_quota} bytes are used"
            )
            continue
        limit, source = org.concurrency
        now_running = counts.get(org_id, 0)
        if limit and now_running >= limit:
            waiting[request_id] = f"waiting: {now_running} of {limit} concurrent jobs are running ({source})"
            continue
        counts[org_id] = now_running + 1
        admitted.append(request_id)
    return admitted, waiting
