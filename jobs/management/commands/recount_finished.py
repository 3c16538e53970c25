"""``manage.py recount_finished``: recount the finished requests per hour from the requests."""

from django.core.management.base import BaseCommand, CommandError

from jobs.domain.finished_counts import rebuild
from orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Recount the finished requests (per organization, job type, final state and hour of creation) "
        "that the dashboard, the stats API and the requests list's TotalRecords read, from the requests "
        "themselves: after rows were written around jobs/domain/transitions.py (a bulk load, a restore). "
        "See docs/performance.md, 'Counts of finished requests'."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--org", help="one organization's name (default: all)")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        org_id = None
        if opts["org"]:
            org = Organization.objects.filter(name=opts["org"]).first()
            if org is None:
                raise CommandError(f"--org: no organization named {opts['org']!r}")
            org_id = org.pk
        rows = rebuild(org_id)
        self.stdout.write(f"recounted: {rows} count rows")
