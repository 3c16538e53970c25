"""Writes for organizations, users and tokens."""

from dataclasses import dataclass

from django.db import transaction

from orgs.models import ApiToken, Organization, User


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plain: str


def token_issue(*, user: User, name: str = "default") -> IssuedToken:
    if user.organization_id is None:
        raise ValueError(f"user {user.username!r} belongs to no organization")
    plain = ApiToken.new_plain()
    token = ApiToken.objects.create(
        user=user, organization_id=user.organization_id, name=name, digest=ApiToken.digest_of(plain)
    )
    return IssuedToken(token=token, plain=plain)


@transaction.atomic
def user_ensure(*, username: str, org_name: str, create: bool) -> User:
    """The user of ``username`` in ``org_name``; created with the organization when ``create``."""
    org = Organization.objects.filter(name=org_name).first()
    if org is None:
        if not create:
            raise LookupError(f"organization {org_name!r} does not exist (use --create)")
        org = Organization.objects.create(name=org_name)
    user = User.objects.filter(username=username).first()
    if user is None:
        if not create:
            raise LookupError(f"user {username!r} does not exist (use --create)")
        user = User.objects.create_user(username=username, organization=org)
    elif user.organization_id != org.id:
        raise LookupError(f"user {username!r} belongs to another organization")
    return user
