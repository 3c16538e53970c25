"""Counts of finished requests per organization, job type, final state and hour of creation
(``FinishedCount``), kept as requests change state.

A request enters a final state only through ``transitions.jobs_finish`` and ``job_cancel``,
leaves one only through ``job_requeue`` (a retry or a restart) and goes away only through
retention; each of them calls ``add`` in its own transaction, so the counts commit (or roll
back) with the change. A batch is one upsert (``INSERT ... ON CONFLICT DO UPDATE SET n = n +
excluded.n``, PostgreSQL and SQLite alike), its keys in one order so two writers lock the rows
alike. Open requests are not counted here: they are few and their index answers for them.

``rebuild`` recounts from the requests (the migration that added the table, ``manage.py
recount_finished``, and whatever wrote states around this module: bulk loads, tests).
"""

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import TruncHour

from jobs.models import FinishedCount, JobRequest
from jobs.states import JOB_TERMINAL

FINAL = sorted(str(s) for s in JOB_TERMINAL)
HOUR = timedelta(hours=1)
# the "hour" of the row counting every hour (an organization's totals: a few rows to read, not
# one per hour of its history), kept by the same upsert as the hour's own row
ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)

# (organization id, job type, final state, created at) of a request
Row = tuple[int, str, str, datetime]


def hour_of(when: datetime) -> datetime:
    """The start of the UTC hour ``when`` is in (a naive time is UTC, as SQLite returns it)."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.replace(minute=0, second=0, microsecond=0)


def add(rows: Iterable[Row], sign: int = 1) -> None:
    """Count the requests of ``rows`` (``sign`` -1: uncount them) in one upsert."""
    counted: Counter[tuple[int, str, str, datetime]] = Counter()
    for org_id, job_type, state, created in rows:
        if str(state) in FINAL:
            counted[(org_id, job_type, str(state), hour_of(created))] += 1
            counted[(org_id, job_type, str(state), ALL_TIME)] += 1
    if not counted:
        return
    table, qn = FinishedCount._meta.db_table, connection.ops.quote_name
    hour_field = FinishedCount._meta.get_field("hour")
    params: list[Any] = []
    for (org_id, job_type, state, hour), n in sorted(counted.items()):  # one lock order for everyone
        params += [org_id, job_type, state, hour_field.get_db_prep_save(hour, connection), sign * n]
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(counted))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(table)} (organization_id, job_type, job_state, hour, n) VALUES {values} "
            f"ON CONFLICT (organization_id, hour, job_type, job_state) DO UPDATE SET n = {qn(table)}.n + excluded.n",
            params,
        )


def of_requests(request_ids: Iterable[int]) -> list[Row]:
    """The rows ``add`` takes for these requests, as they are now."""
    return list(
        JobRequest.objects.filter(pk__in=list(request_ids)).values_list(
            "organization_id", "job_type", "job_state", "created_at"
        )
    )


def drop_empty() -> int:
    """Delete the rows counting nothing (after retention or restarts): how many went."""
    return FinishedCount.objects.filter(n=0).delete()[0]


def rebuild(org_id: int | None = None) -> int:
    """Recount the finished requests (of one organization, or all) from the requests; returns
    how many count rows there are now. On PostgreSQL the table is locked meanwhile: a change
    committing during the recount waits, and counts itself after it."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {FinishedCount._meta.db_table} IN EXCLUSIVE MODE")
        counts = FinishedCount.objects.all()
        requests = JobRequest.objects.filter(job_state__in=FINAL)
        if org_id is not None:
            counts, requests = counts.filter(organization_id=org_id), requests.filter(organization_id=org_id)
        counts.delete()
        grouped = (
            requests.annotate(hour=TruncHour("created_at", tzinfo=UTC))
            .values("organization_id", "job_type", "job_state", "hour")
            .annotate(n=Count("id"))
            .order_by()
        )
        totals: Counter[tuple[int, str, str]] = Counter()
        made = []
        for g in grouped.iterator(chunk_size=5000):
            key = (g["organization_id"], g["job_type"], g["job_state"])
            totals[key] += g["n"]
            made.append(FinishedCount(organization_id=key[0], job_type=key[1], job_state=key[2],
                                      hour=hour_of(g["hour"]), n=g["n"]))  # fmt: skip
        made += [FinishedCount(organization_id=o, job_type=t, job_state=s, hour=ALL_TIME, n=n)
                 for (o, t, s), n in totals.items()]  # fmt: skip
        FinishedCount.objects.bulk_create(made, batch_size=2000)
    return len(made)
