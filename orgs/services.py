"""Writes for organizations, users, tokens, configs and subscriptions."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from orgs import audit, roles
from orgs.models import ApiToken, Organization, SecretValueMixin, Subscription, User

ConfigT = TypeVar("ConfigT", bound=SecretValueMixin)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plain: str


def token_issue(
    *,
    user: User,
    name: str = "default",
    scopes: Iterable[str] = (),
    within: frozenset[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A new token of ``user``; ``scopes`` (role or permission names) narrow its powers, and
    ``within`` (the issuer's own permissions, when issued through a token) bounds them.
    Raises ValueError on an unknown scope or a user without an organization."""
    if user.organization_id is None:
        raise ValueError(f"user {user.username!r} belongs to no organization")
    wanted = sorted(roles.expand_scopes(scopes)) if scopes else []
    if within is not None and not user.is_superuser:
        # a token cannot mint a token stronger than itself
        beyond = sorted(set(wanted) - within)
        if beyond:
            raise ValueError(f"the issuing token lacks {', '.join(beyond)}")
        wanted = wanted or sorted(roles.effective(user.role) & within)
    plain = ApiToken.new_plain()
    token = ApiToken.objects.create(
        user=user, organization_id=user.organization_id, name=name, digest=ApiToken.digest_of(plain),
        scopes=wanted, expires_at=expires_at,
    )  # fmt: skip
    return IssuedToken(token=token, plain=plain)


@transaction.atomic
def user_ensure(*, username: str, org_name: str, create: bool, role: str | None = None) -> User:
    """The user of ``username`` in ``org_name``; created with the organization when ``create``
    (the creator of an organization is its owner, a user added to an existing one a member
    unless ``role`` says otherwise). ``role`` also changes an existing user's role."""
    if role is not None and role not in roles.ROLES:
        raise LookupError(f"unknown role {role!r}: one of {', '.join(roles.ROLES)}")
    org = Organization.objects.filter(name=org_name).first()
    new_org = org is None
    if org is None:
        if not create:
            raise LookupError(f"organization {org_name!r} does not exist (use --create)")
        org = Organization.objects.create(name=org_name)
    user = User.objects.filter(username=username).first()
    if user is None:
        if not create:
            raise LookupError(f"user {username!r} does not exist (use --create)")
        user = User.objects.create_user(
            username=username, organization=org, role=role or (roles.OWNER if new_org else roles.MEMBER)
        )
    elif user.organization_id != org.id:
        raise LookupError(f"user {username!r} belongs to another organization")
    elif role is not None and user.role != role:
        user.role = role
        user.save(update_fields=["role"])
    return user


@transaction.atomic
def org_create(*, creator: User, name: str, **fields: Any) -> Organization:
    """A new organization; a creator without one joins it as its owner."""
    org = Organization.objects.create(name=name, **fields)
    if creator.organization_id is None:
        User.objects.filter(pk=creator.pk).update(organization=org, role=roles.OWNER)
        creator.organization_id, creator.role = org.pk, roles.OWNER
    return org


@transaction.atomic
def org_delete(*, org: Organization) -> None:
    """Delete an organization and everything it owns; its users stay, without an organization."""
    User.objects.filter(organization=org).update(organization=None, role=roles.MEMBER)
    org.delete()


def user_create(*, org_id: int, username: str, role: str, **fields: Any) -> User:
    password = fields.pop("password", None)
    user = User(username=username, organization_id=org_id, role=role, **fields)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


def save_fields(obj: Any, fields: dict[str, Any]) -> Any:
    for name, value in fields.items():
        setattr(obj, name, value)
    obj.save()
    return obj


def config_save(config: ConfigT, *, name: str, value: str, secret: bool) -> ConfigT:
    """Save a name/value config, encrypting the value when it is secret."""
    config.name, config.secret = name, secret
    config.set_value(value)
    config.save()
    return config


@transaction.atomic
def subscription_save(subscription: Subscription, fields: dict[str, Any]) -> Subscription:
    """Save a subscription; activating one ends the organization's other active one."""
    for name, value in fields.items():
        setattr(subscription, name, value)
    if subscription.started_at is None:
        subscription.started_at = timezone.now()
    if subscription.active:
        Subscription.objects.filter(organization_id=subscription.organization_id, active=True).exclude(
            pk=subscription.pk
        ).update(active=False, ended_at=timezone.now())
    subscription.save()
    return subscription


class RoleRefused(Exception):
    """A role change the actor may not make; the message says why."""


def member_set_role(*, actor: User, member: User, role: str) -> User:
    """Give ``member`` (of the actor's organization) ``role``: only up to the actor's own, never
    to or from a role above it, and never one's own."""
    if role not in roles.ROLES:
        raise RoleRefused(f"unknown role {role!r}: one of {', '.join(roles.ROLES)}")
    if member.pk == actor.pk:
        raise RoleRefused("you cannot change your own role")
    if not actor.is_superuser:
        if member.organization_id != actor.organization_id or "User:Write" not in actor.permissions():
            raise RoleRefused("you cannot change this member's role")
        for r in (member.role, role):
            if not roles.can_grant(actor.role, r):
                raise RoleRefused(f"a {actor.role} cannot grant or change the {r} role")
    old = member.role
    if old != role:
        member.role = role
        member.save(update_fields=["role"])
        audit.record_change("User:Role", member, user=actor, summary=f"{member.username}: {old} -> {role}",
                            data={"from": old, "to": role})  # fmt: skip
    return member
