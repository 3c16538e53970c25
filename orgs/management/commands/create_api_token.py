from django.core.management.base import BaseCommand, CommandError

from orgs import services


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME in organization ORG and print it as the last line. "
        "With --create the organization and user are created when missing."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="organization name")
        parser.add_argument("--create", action="store_true", help="create the organization and user")
        parser.add_argument("--name", default="cli", help="a label for the token")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        try:
            user = services.user_ensure(
                username=opts["username"], org_name=opts["org"], create=opts["create"]
            )
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        issued = services.token_issue(user=user, name=opts["name"])
        self.stdout.write(f"token for {user.username} in {user.organization}:")
        self.stdout.write(issued.plain)
