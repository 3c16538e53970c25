"""Account pages: API tokens on the user's page, the members page (roles, invitations),
creating or joining an organization."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from formicary_site.error_views import post_only
from orgs import audit, invitations, roles, selectors, services
from orgs.authed import AuthedHttpRequest
from orgs.forms import CreateOrganizationForm, InviteForm, JoinOrganizationForm, TokenForm
from orgs.models import Invitation
from orgs.scoping import for_user
from orgs.web_permissions import requires


def _account_context(request: AuthedHttpRequest, **extra: object) -> dict[str, object]:
    return {
        "tokens": selectors.tokens_of(request.user),
        "token_form": extra.pop("token_form", None) or TokenForm(),
        **extra,
    }


def _members_context(request: AuthedHttpRequest, **extra: object) -> dict[str, object]:
    user = request.user
    grantable = [r for r in roles.ROLES if user.is_superuser or roles.can_grant(user.role, r)]
    return {
        "invite_form": extra.pop("invite_form", None) or InviteForm(grantable=grantable),
        "invitations": for_user(Invitation, user).filter(accepted_at__isnull=True).order_by("-id")[:20],
        "members": selectors.members_of(user.organization_id).order_by("username"),
        "grantable": grantable,
        **extra,
    }


@login_required
@requires("User:Read")
def members(request: AuthedHttpRequest) -> HttpResponse:
    if not request.user.organization_id:
        return redirect("orgs:setup")
    return render(request, "orgs/members.html", _members_context(request))


@login_required
@post_only
@requires("User:Write")
def member_role(request: AuthedHttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(selectors.members_of(request.user.organization_id), pk=user_id)
    try:
        services.member_set_role(actor=request.user, member=member, role=request.POST.get("role", ""))
    except services.RoleRefused as exc:
        raise PermissionDenied(str(exc)) from None
    messages.success(request, f"{member.username} is now {member.role}")
    return redirect("orgs:members")


@login_required
def account(request: AuthedHttpRequest) -> HttpResponse:
    if not request.user.organization_id:
        return redirect("orgs:setup")
    return render(request, "orgs/account.html", _account_context(request))


@login_required
@post_only
@requires("Token:Write")
def token_create(request: AuthedHttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not request.user.organization_id or not form.is_valid():
        return render(request, "orgs/account.html", _account_context(request, token_form=form), status=400)
    scope = form.cleaned_data.get("scope")
    issued = services.token_issue(
        user=request.user, name=form.cleaned_data["name"], scopes=[scope] if scope else []
    )
    audit.record(request, "Token:Create", issued.token, summary=f"issued {issued.token.name}",
                 data={"scopes": issued.token.scopes})  # fmt: skip
    # shown once, on this response only: only the digest is stored
    return render(request, "orgs/account.html", _account_context(request, new_token=issued.plain))


@login_required
@post_only
@requires("Token:Write")
def token_delete(request: AuthedHttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(selectors.tokens_of(request.user), pk=token_id)
    audit.record(request, "Token:Delete", token, summary=f"revoked {token.name}")
    token.delete()
    messages.success(request, f"token {token.name} revoked")
    return redirect("orgs:account")


@login_required
@post_only
@requires("User:Write")
def invite(request: AuthedHttpRequest) -> HttpResponse:
    form = InviteForm(request.POST, grantable=list(roles.ROLES))
    org = request.user.organization
    if org is None or not form.is_valid():
        return render(request, "orgs/members.html", _members_context(request, invite_form=form), status=400)
    try:
        invitation = invitations.invite(
            inviter=request.user, org=org, email=form.cleaned_data["email"],
            role=form.cleaned_data["role"] or roles.MEMBER, request=request,
        )  # fmt: skip
    except invitations.InvitationRefused as exc:
        raise PermissionDenied(str(exc)) from None
    except invitations.MailNotSent as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"invitation sent to {invitation.email} ({invitation.role})")
    return redirect("orgs:members")


@login_required
def setup(request: AuthedHttpRequest) -> HttpResponse:
    """A new user creates an organization or joins one with an invitation code."""
    if request.user.organization_id:
        return redirect("ui:dashboard")
    create_form = CreateOrganizationForm(prefix="create")
    join_form = JoinOrganizationForm(prefix="join", initial={"code": request.GET.get("code", "")})
    if request.method == "POST":
        form: CreateOrganizationForm | JoinOrganizationForm
        if "create" in request.POST:
            create_form = CreateOrganizationForm(request.POST, prefix="create")
            form = create_form
        else:
            join_form = JoinOrganizationForm(request.POST, prefix="join")
            form = join_form
        if form.is_valid():
            try:
                org = form.save(request.user)
            except ValidationError as exc:  # the invitation was taken meanwhile
                form.add_error(None, exc)
            else:
                messages.success(request, f"welcome to {org.name}")
                return redirect("ui:dashboard")
    return render(request, "orgs/setup.html", {"create_form": create_form, "join_form": join_form})


@login_required
def join(request: AuthedHttpRequest, code: str) -> HttpResponse:
    return redirect(reverse("orgs:setup") + f"?code={code}")


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: a signed-in user without an organization accepts; someone without an
    account creates one here (or signs in first and comes back)."""
    try:
        found = invitations.invitation_from_link(token)
    except invitations.InvitationRefused as exc:
        return render(request, "orgs/invitation.html", {"refused": str(exc)}, status=400)
    context: dict[str, object] = {"invitation": found, "token": token}
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                org = invitations.invitation_accept(found, request.user)
            else:
                user = invitations.invitation_sign_up(
                    found,
                    username=request.POST.get("username", ""),
                    password=request.POST.get("password", ""),
                )
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                org = found.organization
        except invitations.InvitationRefused as exc:
            context["error"] = str(exc)
            return render(request, "orgs/invitation.html", context, status=400)
        messages.success(request, f"welcome to {org.name}")
        return redirect("ui:dashboard")
    return render(request, "orgs/invitation.html", context)
