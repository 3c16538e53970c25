"""Leader election: a lease row in the database that one queen holds and renews.

The scheduler and cron run only on the holder. A holder that dies stops renewing; the lease
expires after ``ttl`` and another queen takes it on its next try (within seconds).
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import QueenLease

SCHEDULER = "scheduler"


class Lease:
    def __init__(self, holder: str, *, name: str = SCHEDULER, ttl_secs: float = 6.0) -> None:
        self.holder = holder
        self.name = name
        self.ttl = timedelta(seconds=ttl_secs)
        self.held_until: datetime | None = None

    def try_acquire(self) -> bool:
        """Take or renew the lease; True while this queen holds it."""
        now = timezone.now()
        expires = now + self.ttl
        won = (
            QueenLease.objects.filter(name=self.name)
            .filter(Q(holder=self.holder) | Q(expires_at__lt=now))
            .update(holder=self.holder, expires_at=expires)
            == 1
        )
        if not won:
            try:
                with transaction.atomic():
                    QueenLease.objects.create(name=self.name, holder=self.holder, expires_at=expires)
                won = True
            except IntegrityError:
                won = False
        self.held_until = expires if won else None
        return won

    def is_held(self) -> bool:
        return self.held_until is not None and timezone.now() < self.held_until

    def release(self) -> None:
        QueenLease.objects.filter(name=self.name, holder=self.holder).update(expires_at=timezone.now())
        self.held_until = None
