"""Forms of the account pages: create or join an organization, invite, name a new API token."""

from typing import Any, cast

from django import forms
from django.db import transaction
from django.utils import timezone

from orgs import audit, invitations, roles
from orgs.models import Invitation, Organization, User


class CreateOrganizationForm(forms.Form):
    name = forms.CharField(max_length=100, label="Organization name")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Organization.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("that name is taken; ask a member for an invitation")
        return name

    @transaction.atomic
    def save(self, user: User) -> Organization:
        org = Organization.objects.create(name=self.cleaned_data["name"])
        # the creator of an organization is its owner
        User.objects.filter(pk=user.pk, organization__isnull=True).update(organization=org, role=roles.OWNER)
        audit.record_change("Organization:Create", org, user=user, organization_id=org.pk,
                            summary=f"created {org.name}")  # fmt: skip
        return org


class JoinOrganizationForm(forms.Form):
    code = forms.CharField(max_length=64, label="Invitation code")

    def clean_code(self) -> Invitation:
        invitation = (
            Invitation.objects.select_related("organization")
            .filter(
                code=self.cleaned_data["code"].strip(),
                accepted_at__isnull=True,
                expires_at__gt=timezone.now(),
            )
            .first()
        )
        if invitation is None:
            raise forms.ValidationError("unknown, used or expired invitation code")
        return invitation

    def save(self, user: User) -> Organization:
        try:
            return invitations.invitation_accept(self.cleaned_data["code"], user)
        except invitations.InvitationRefused as exc:  # e.g. taken meanwhile
            raise forms.ValidationError(str(exc)) from None


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(required=False, initial=roles.MEMBER)

    def __init__(self, *args: Any, grantable: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = [(r, r) for r in grantable or [roles.MEMBER]]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")
    # the common narrower scopes; the API takes any list of roles and permissions
    scope = forms.ChoiceField(
        required=False,
        choices=[("", "my role"), ("viewer", "read-only"), ("JobRequest:Submit", "submit only"),
                 ("Ant:Register", "ant only")],
    )  # fmt: skip
