"""Celery tasks of artifacts: thin wrappers around services (the beat schedule is in settings)."""

from celery import shared_task

from artifacts.services import artifacts_expire


@shared_task(name="artifacts.tasks.expire_artifacts")
def expire_artifacts() -> int:
    return artifacts_expire()
