"""Account pages: API tokens on the user's page, creating or joining an organization."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from formicary_site.error_views import post_only
from orgs import services
from orgs.forms import CreateOrganizationForm, InviteForm, JoinOrganizationForm, TokenForm
from orgs.models import ApiToken, Invitation
from orgs.scoping import for_user
from orgs.web_permissions import requires


def _account_context(request: HttpRequest, **extra: object) -> dict[str, object]:
    return {
        "tokens": ApiToken.objects.filter(user=request.user),
        "token_form": extra.pop("token_form", None) or TokenForm(),
        "invite_form": extra.pop("invite_form", None) or InviteForm(),
        "invitations": for_user(Invitation, request.user)
        .filter(accepted_at__isnull=True)
        .order_by("-id")[:20],
        "members": request.user.organization.users.order_by("username") if request.user.organization else [],
        **extra,
    }


@login_required
def account(request: HttpRequest) -> HttpResponse:
    if not request.user.organization_id:
        return redirect("orgs:setup")
    return render(request, "orgs/account.html", _account_context(request))


@login_required
@post_only
@requires("Token:Write")
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not request.user.organization_id or not form.is_valid():
        return render(request, "orgs/account.html", _account_context(request, token_form=form), status=400)
    scope = form.cleaned_data.get("scope")
    issued = services.token_issue(
        user=request.user, name=form.cleaned_data["name"], scopes=[scope] if scope else []
    )
    # shown once, on this response only: only the digest is stored
    return render(request, "orgs/account.html", _account_context(request, new_token=issued.plain))


@login_required
@post_only
@requires("Token:Write")
def token_delete(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.filter(user=request.user), pk=token_id)
    token.delete()
    messages.success(request, f"token {token.name} revoked")
    return redirect("orgs:account")


@login_required
@post_only
@requires("User:Write")
def invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if not request.user.organization_id or not form.is_valid():
        return render(request, "orgs/account.html", _account_context(request, invite_form=form), status=400)
    invitation = form.save(request.user)
    link = request.build_absolute_uri(reverse("orgs:join", args=[invitation.code]))
    messages.success(request, f"invitation for {invitation.email}: {link}")
    return redirect("orgs:account")


@login_required
def setup(request: HttpRequest) -> HttpResponse:
    """A new user creates an organization or joins one with an invitation code."""
    if request.user.organization_id:
        return redirect("ui:dashboard")
    create_form = CreateOrganizationForm(prefix="create")
    join_form = JoinOrganizationForm(prefix="join", initial={"code": request.GET.get("code", "")})
    if request.method == "POST":
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
def join(request: HttpRequest, code: str) -> HttpResponse:
    return redirect(reverse("orgs:setup") + f"?code={code}")
