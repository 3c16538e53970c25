"""Invitations by email: a signed, expiring link that joins its organization with the invited role.

The link carries the invitation's random code, organization and role, signed with the site's
key (``django.core.signing``): a changed organization or role breaks the signature, and the row
must still agree with it, be unused and unexpired (``expires_at`` is the authority).
"""

import secrets
import smtplib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from orgs import audit, roles
from orgs.models import Invitation, Organization, User

INVITATION_TTL = timedelta(days=7)
SALT = "orgs.invitation"
# the signature's own limit, a backstop behind the row's expires_at
MAX_AGE = timedelta(days=30)


class InvitationRefused(Exception):
    """An invitation that cannot be created or accepted; the message says why."""


class MailNotSent(Exception):
    """The mail server refused or could not be reached; the invitation was withdrawn."""


def invitation_create(
    *, inviter: User, org: Organization, email: str, role: str = roles.MEMBER, ttl: timedelta = INVITATION_TTL
) -> Invitation:
    """A new invitation to ``org`` for ``email``: only up to the inviter's own role."""
    if role not in roles.ROLES:
        raise InvitationRefused(f"unknown role {role!r}: one of {', '.join(roles.ROLES)}")
    if not inviter.is_superuser:
        if inviter.organization_id != org.pk:
            raise InvitationRefused("you can invite only to your own organization")
        if not roles.can_grant(inviter.role, role):
            raise InvitationRefused(f"a {inviter.role} cannot invite a {role}")
    invitation = Invitation.objects.create(
        organization=org, email=email, role=role, invited_by=inviter,
        code=secrets.token_urlsafe(24), expires_at=timezone.now() + ttl,
    )  # fmt: skip
    audit.record_change("Invitation:Create", invitation, user=inviter,
                        summary=f"invited {email} as {role}", data={"email": email, "role": role})  # fmt: skip
    return invitation


def link_token(invitation: Invitation) -> str:
    return signing.dumps(
        {"c": invitation.code, "o": invitation.organization_id, "r": invitation.role},
        salt=SALT,
        compress=True,
    )


def invite(*, inviter: User, org: Organization, email: str, role: str, request: HttpRequest) -> Invitation:
    """Create an invitation and mail its link; when the mail cannot be sent, no invitation stays."""
    invitation = invitation_create(inviter=inviter, org=org, email=email, role=role)
    link = request.build_absolute_uri(reverse("orgs:invitation", args=[link_token(invitation)]))
    try:
        invitation_send(invitation, link)
    except (OSError, smtplib.SMTPException) as exc:
        invitation.delete()
        raise MailNotSent(f"the invitation email could not be sent: {exc}") from None
    return invitation


def invitation_send(invitation: Invitation, link: str) -> None:
    """Mail the link through Django's mail (``EMAIL_URL``); a failure to send raises."""
    org = invitation.organization
    inviter = invitation.invited_by.username if invitation.invited_by else "a member"
    body = (
        f"{inviter} invites you to join {org.name} on Formicary as {invitation.role}.\n\n"
        f"Accept the invitation (sign in, or create an account):\n{link}\n\n"
        f"The link expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC and works once.\n"
    )
    send_mail(f"Join {org.name} on Formicary", body, settings.DEFAULT_FROM_EMAIL, [invitation.email])


def invitation_from_link(token: str) -> Invitation:
    """The open invitation a link stands for; InvitationRefused says why not."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired:
        raise InvitationRefused("this invitation has expired") from None
    except signing.BadSignature:
        raise InvitationRefused("this invitation link is not valid") from None
    invitation = (
        Invitation.objects.select_related("organization", "invited_by").filter(code=payload.get("c")).first()
    )
    if invitation is None or (invitation.organization_id, invitation.role) != (
        payload.get("o"),
        payload.get("r"),
    ):
        raise InvitationRefused("this invitation link is not valid")
    if invitation.accepted_at is not None:
        raise InvitationRefused("this invitation has already been used")
    if invitation.expires_at <= timezone.now():
        raise InvitationRefused("this invitation has expired")
    return invitation


@transaction.atomic
def invitation_accept(invitation: Invitation, user: User) -> Organization:
    """``user`` (who belongs to no organization) joins with the invited role; once only."""
    if user.organization_id is not None:
        raise InvitationRefused(
            "you already belong to an organization: sign in with another account or create one"
        )
    if invitation.expires_at <= timezone.now():
        raise InvitationRefused("this invitation has expired")
    # conditional: an invitation is used once even when two people accept it at the same time
    if not Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    ):
        raise InvitationRefused("this invitation has already been used")
    User.objects.filter(pk=user.pk, organization__isnull=True).update(
        organization=invitation.organization, role=invitation.role
    )
    user.organization_id, user.role = invitation.organization_id, invitation.role
    audit.record_change("Invitation:Accept", invitation, user=user,
                        summary=f"{user.username} joined as {invitation.role}", data={"role": invitation.role})  # fmt: skip
    return invitation.organization


@transaction.atomic
def invitation_sign_up(invitation: Invitation, *, username: str, password: str) -> User:
    """A new account for the invitee, joined through ``invitation``."""
    username = username.strip()
    if not username or User.objects.filter(username__iexact=username).exists():
        raise InvitationRefused(f"the username {username!r} is blank or taken")
    user = User(username=username, email=invitation.email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvitationRefused(" ".join(exc.messages)) from None
    user.set_password(password)
    user.save()
    invitation_accept(invitation, user)
    return user
