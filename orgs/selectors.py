"""Reads for the account pages: a user's API tokens and an organization's members."""

from django.db.models import QuerySet

from orgs.models import ApiToken, User


def tokens_of(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def members_of(org_id: int | None) -> QuerySet[User]:
    """The organization's users (nobody's, without an organization)."""
    return User.objects.filter(organization_id=org_id or 0)
