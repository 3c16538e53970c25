"""``manage.py message_key --ant-id ID``: the message key of one ant, for its FORMICARY_MESSAGE_KEY."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ants.config import ANT_ID_RE
from ants.messaging.sealing import DERIVED_KEY_PREFIX, export_ant_key


class Command(BaseCommand):
    help = (
        "Print the message key of one ant, derived from this deployment's FORMICARY_MESSAGE_KEY. "
        "Give it to that ant as its FORMICARY_MESSAGE_KEY: it then reads and writes its own messages "
        "only, without holding the deployment secret (docs/messaging.md)."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--ant-id", required=True, help="the ant's id (FORMICARY_ANT_ID)")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        secret = settings.FORMICARY_MESSAGE_KEY
        if not secret:
            raise CommandError(
                "message encryption is off: set FORMICARY_MESSAGE_ENCRYPTION and FORMICARY_MESSAGE_KEY"
            )
        if secret.startswith(DERIVED_KEY_PREFIX):
            raise CommandError(
                "FORMICARY_MESSAGE_KEY here is an ant's key: run this where the deployment secret is"
            )
        if not ANT_ID_RE.match(opts["ant_id"]):
            raise CommandError(f"--ant-id: {opts['ant_id']!r} is not an ant id")
        self.stdout.write(export_ant_key(secret, opts["ant_id"]))
