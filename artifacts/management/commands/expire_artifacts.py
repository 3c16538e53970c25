"""``manage.py expire_artifacts``: delete expired artifacts from the store and the database."""

from django.core.management.base import BaseCommand

from artifacts.services import artifacts_expire


class Command(BaseCommand):
    help = "Delete artifacts (and logs and caches) whose expiry has passed, from the store and the database."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--org", type=int, dest="org_id", help="only this organization's artifacts")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        deleted = artifacts_expire(organization_id=opts.get("org_id"))
        self.stdout.write(f"expired {deleted} artifacts")
