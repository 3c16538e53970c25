from django.core.management.base import BaseCommand, CommandError

from orgs import roles, services


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME in organization ORG and print it as the last line. "
        "With --create the organization and user are created when missing (the creator of an "
        "organization is its owner). --role sets the user's role; --scope narrows the token."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="organization name")
        parser.add_argument("--create", action="store_true", help="create the organization and user")
        parser.add_argument("--name", default="cli", help="a label for the token")
        parser.add_argument(
            "--role",
            choices=roles.ROLES,
            help="the user's role in the organization (set on an existing user too)",
        )
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            help="narrow the token to a role or a permission (e.g. viewer, JobRequest:Submit); repeatable",
        )

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        try:
            user = services.user_ensure(
                username=opts["username"], org_name=opts["org"], create=opts["create"], role=opts["role"]
            )
            issued = services.token_issue(user=user, name=opts["name"], scopes=opts["scope"])
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        scopes = f" scoped to {', '.join(issued.token.scopes)}" if issued.token.scopes else ""
        self.stdout.write(f"token for {user.username} ({user.role}) in {user.organization}{scopes}:")
        self.stdout.write(issued.plain)
