"""Celery tasks of triggers: thin wrappers around the pollers (the beat schedule is in settings)."""

from celery import shared_task

from jobs.triggers.pollers import triggers_poll


@shared_task(
    name="jobs.triggers.tasks.poll_triggers", ignore_result=True, soft_time_limit=240, time_limit=300
)
def poll_triggers() -> int:
    """Every due S3 and queue trigger, once; each trigger's own poll_interval decides if it is due."""
    return triggers_poll()
