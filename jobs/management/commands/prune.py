"""``manage.py prune --older-than 90d``: delete finished requests older than that (retention)."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.definition.durations import parse_age
from jobs.services.retention import requests_prune


class Command(BaseCommand):
    help = (
        "Delete finished requests (COMPLETED, FAILED, CANCELLED, FILTERED) last changed longer ago than "
        "--older-than, with their executions, tasks, logs and artifacts (rows and stored objects), in "
        "small batches that skip rows in use. Unfinished requests are never touched. Without "
        "--older-than, FORMICARY_RETENTION_DAYS is used. See docs/performance.md, 'Retention'."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--older-than", help="an age such as 90d, 12w or 36h")
        parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
        parser.add_argument(
            "--batch-size", type=int, default=500, help="requests per transaction (default 500)"
        )

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        text = opts["older_than"]
        if text is None:
            days = settings.FORMICARY_RETENTION_DAYS
            if days <= 0:
                raise CommandError("give --older-than (e.g. 90d), or set FORMICARY_RETENTION_DAYS")
            age = float(days) * 86400
        else:
            try:
                age = parse_age(text)
            except ValueError as exc:
                raise CommandError(f"--older-than: {exc}") from None
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size: must be at least 1")
        result = requests_prune(older_than=timedelta(seconds=age), batch_size=opts["batch_size"],
                                dry_run=opts["dry_run"])  # fmt: skip
        if result.dry_run:
            self.stdout.write(f"would delete {result.requests} finished requests last changed before "
                              f"{result.cutoff.isoformat()} (dry run: nothing deleted)")  # fmt: skip
            return
        self.stdout.write(f"deleted {result.requests} finished requests last changed before "
                          f"{result.cutoff.isoformat()} in {result.batches} batches")  # fmt: skip
        for label, n in sorted(result.deleted.items()):
            self.stdout.write(f"  {label}: {n}")
