"""Cron triggers: a request for every tick of a definition's ``cron_trigger``, exactly once.

Exactly once even with several queens: each tick's request carries a unique ``cron_key``
(organization, job type, tick time), so a second insert of the same tick fails in the database.
"""

import logging
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.definition.cron import CronError, previous_fire
from jobs.models import JobDefinition, JobRequest

log = logging.getLogger(__name__)

# A tick older than this (the queen was down) is not run late.
MAX_LATENESS = timedelta(seconds=60)


def cron_key(definition: JobDefinition, tick: datetime) -> str:
    return f"{definition.organization_id}:{definition.job_type}:{tick.isoformat()}"


class CronScheduler:
    def __init__(self) -> None:
        self.last_tick: dict[int, datetime] = {}

    def run_once(self, now: datetime | None = None) -> int:
        from jobs.services.requests import request_submit

        now = now or timezone.now()
        created = 0
        definitions = JobDefinition.objects.filter(
            is_latest=True, disabled=False, deleted_at__isnull=True
        ).exclude(cron_trigger="")
        for definition in definitions.select_related("created_by"):
            try:
                tick = previous_fire(definition.cron_trigger, now)
            except CronError as exc:
                log.warning("job type %s: %s", definition.job_type, exc)
                continue
            if now - tick > MAX_LATENESS or self.last_tick.get(definition.pk) == tick:
                continue
            self.last_tick[definition.pk] = tick
            key = cron_key(definition, tick)
            if JobRequest.objects.filter(cron_key=key).exists():
                continue
            try:
                with transaction.atomic():
                    request_submit(org_id=definition.organization_id, user=definition.created_by,
                                   job_type=definition.job_type, scheduled_at=tick, cron_key=key)  # fmt: skip
                created += 1
            except IntegrityError:
                pass  # another queen created this tick first
            except ValidationError as exc:
                log.warning("cron tick of %s not submitted: %s", definition.job_type, "; ".join(exc.messages))
        return created
