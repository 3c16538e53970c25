"""``manage.py rotate_keys``: re-encrypt every secret with the current ``FORMICARY_ENCRYPTION_KEY``."""

from django.core.management.base import BaseCommand, CommandError

from jobs.services.secrets import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret config and param with FORMICARY_ENCRYPTION_KEY. Old keys that may "
        "still be in use go in FORMICARY_ENCRYPTION_KEYS_OLD (comma separated) while this runs; "
        "remove them afterwards. See docs/security.md."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--only-stale", action="store_true",
                            help="only rows not yet encrypted with the current key")  # fmt: skip

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        try:
            counts = secrets_reencrypt(only_stale=opts["only_stale"])
        except ValueError as exc:
            raise CommandError(
                f"{exc}: add the key it was encrypted with to FORMICARY_ENCRYPTION_KEYS_OLD"
            ) from exc
        for name, count in counts.items():
            self.stdout.write(f"{name}: {count} re-encrypted")
        self.stdout.write(f"{sum(counts.values())} secrets now use the current key")
