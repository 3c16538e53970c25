"""Prometheus metrics: counters and a histogram observed where things happen, and gauges read
from the database at each scrape (so they are right whatever process changed the rows).

With PROMETHEUS_MULTIPROC_DIR set (a folder shared by the web, queen and Celery processes, emptied
at deployment start), the counters of every process are summed at scrape; without it only the
scraping process's own are seen (standalone runs everything in one process).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

TASK_DURATION = Histogram(
    "formicary_task_duration_seconds", "How long finished tasks ran, by executor method", ["method"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
)  # fmt: skip
TASKS_FINISHED = Counter("formicary_tasks_finished", "Tasks that ended, by executor method and state",
                         ["method", "state"])  # fmt: skip
NOTIFICATION_FAILURES = Counter(
    "formicary_notification_failures", "Email or Slack sends that failed", ["channel"]
)
WEBHOOK_FAILURES = Counter("formicary_webhook_failures", "Webhook calls that failed", ["level"])


class DatabaseCollector(Collector):
    """Gauges computed from the database at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from ants.models import AntRegistration
        from jobs.models import JobRequest, TaskExecution, WebhookDelivery
        from jobs.states import JobState

        now = timezone.now()
        by_state = GaugeMetricFamily("formicary_requests", "Job requests by job type and state",
                                     labels=["job_type", "state"])  # fmt: skip
        for row in JobRequest.objects.values("job_type", "job_state").annotate(n=Count("id")).order_by():
            by_state.add_metric([row["job_type"], row["job_state"]], row["n"])
        yield by_state
        pending = JobRequest.objects.filter(job_state=JobState.PENDING)
        due = pending.filter(scheduled_at__lte=now).filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now)
        )
        agg = pending.aggregate(n=Count("id"), oldest=Min("created_at"))
        yield GaugeMetricFamily("formicary_queue_depth", "Pending job requests", value=agg["n"])
        yield GaugeMetricFamily("formicary_queue_oldest_pending_age_seconds", "Age of the oldest pending request",
                                value=_age(now, agg["oldest"]))  # fmt: skip
        yield GaugeMetricFamily(
            "formicary_scheduler_lag_seconds", "How long the oldest due request has waited past its scheduled time",
            value=_age(now, due.aggregate(t=Min("scheduled_at"))["t"]),
        )  # fmt: skip
        capacity = GaugeMetricFamily(
            "formicary_ant_capacity", "Task slots of each live ant", labels=["ant_id"]
        )
        load = GaugeMetricFamily("formicary_ant_load", "Tasks running on each live ant", labels=["ant_id"])
        for ant_id, cap, cur in AntRegistration.objects.filter(alive=True).values_list(
            "ant_id", "max_capacity", "current_load"
        ):
            capacity.add_metric([ant_id], cap)
            load.add_metric([ant_id], cur)
        yield capacity
        yield load
        tasks = GaugeMetricFamily("formicary_tasks", "Task executions by executor method and state",
                                  labels=["method", "state"])  # fmt: skip
        for row in TaskExecution.objects.values("method", "task_state").annotate(n=Count("id")).order_by():
            tasks.add_metric([row["method"], row["task_state"]], row["n"])
        yield tasks
        deliveries = GaugeMetricFamily("formicary_webhook_deliveries", "Webhook delivery attempts by outcome",
                                       labels=["outcome"])  # fmt: skip
        ok = Q(status_code__gte=200, status_code__lt=300)
        counts = WebhookDelivery.objects.aggregate(ok=Count("id", filter=ok), failed=Count("id", filter=~ok))
        for outcome in ("ok", "failed"):
            deliveries.add_metric([outcome], counts[outcome])
        yield deliveries


def _age(now, moment) -> float:  # type: ignore[no-untyped-def]
    return max(0.0, (now - moment).total_seconds()) if moment else 0.0


class _ProcessCollector(Collector):
    """This process's own counters and histogram (no multi-process folder)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(DatabaseCollector())
    return generate_latest(registry)
