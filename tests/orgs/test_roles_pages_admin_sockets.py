"""The same role table in the web pages (actions hidden and refused), the Django admin and the
websockets (a viewer watches, an ant needs Ant:Register)."""

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.test import Client

from ants.web.consumers import authenticate
from jobs.consumers import request_snapshot
from jobs.models import JobDefinition, JobRequest
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs import services
from orgs.models import OrgConfig, User

DEFINITION = "job_type: page-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo hi]\n"


def staff(role: str, org_name: str = "acme") -> User:
    user = services.user_ensure(username=f"{org_name}-{role}", org_name=org_name, create=True, role=role)
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["jobs", "orgs"]))
    return User.objects.get(pk=user.pk)  # no cached permissions


def browser(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def acme(alice):  # type: ignore[no-untyped-def]
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="page-job", params={})
    return {"definition": definition, "request": request}


@pytest.mark.django_db
def test_a_viewer_sees_pages_without_actions_and_is_refused_them(acme):
    viewer, member = browser(staff("viewer")), browser(staff("member"))
    d, r = acme["definition"], acme["request"]
    page = viewer.get(f"/jobs/definitions/{d.pk}").content.decode()
    assert (
        'id="submit-form"' not in page and 'id="submit-refused"' in page and "toggle-definition" not in page
    )
    assert 'id="submit-form"' in member.get(f"/jobs/definitions/{d.pk}").content.decode()
    assert "cancel-request" not in viewer.get(f"/jobs/requests/{r.pk}").content.decode()
    assert "cancel-request" in member.get(f"/jobs/requests/{r.pk}").content.decode()
    assert "Upload a definition" not in viewer.get("/jobs/definitions").content.decode()
    before = JobRequest.objects.count()
    assert viewer.post(f"/jobs/definitions/{d.pk}/submit", {}).status_code == 403
    assert JobRequest.objects.count() == before
    assert viewer.post(f"/jobs/requests/{r.pk}/cancel").status_code == 403
    assert viewer.post(f"/jobs/definitions/{d.pk}/toggle").status_code == 403
    assert viewer.get("/jobs/definitions/upload").status_code == 403
    assert viewer.post(f"/jobs/definitions/{d.pk}/configs", {"name": "X", "value": "y"}).status_code == 403
    assert viewer.post("/account/invite", {"email": "x@example.com"}).status_code == 403
    assert member.post("/account/invite", {"email": "x@example.com"}).status_code == 403
    assert member.post(f"/jobs/requests/{r.pk}/cancel").status_code == 302
    r.refresh_from_db()
    assert r.job_state == "CANCELLED"


@pytest.mark.django_db
def test_the_admin_follows_the_role(acme):
    definition: JobDefinition = acme["definition"]
    config = OrgConfig.objects.create(organization=definition.organization, name="K", value="v")
    viewer, member, admin = browser(staff("viewer")), browser(staff("member")), browser(staff("admin"))
    change = f"/admin/jobs/jobdefinition/{definition.pk}/change/"
    assert viewer.get(change).status_code == 200  # read-only view
    assert "Save" not in viewer.get(change).content.decode()
    assert (
        viewer.post(f"/admin/jobs/jobdefinition/{definition.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert JobDefinition.objects.filter(pk=definition.pk).exists()
    assert viewer.get("/admin/orgs/orgconfig/add/").status_code == 403
    assert member.get("/admin/orgs/orgconfig/add/").status_code == 200
    assert member.get("/admin/orgs/orgconfig/").status_code == 200
    assert member.get(f"/admin/orgs/orgconfig/{config.pk}/change/").status_code == 200
    # users: admins manage them, members only see them; no way up to superuser
    target = services.user_ensure(username="acme-target", org_name="acme", create=True)
    user_change = f"/admin/orgs/user/{target.pk}/change/"
    assert member.get("/admin/orgs/user/add/").status_code == 403
    page = admin.get(user_change).content.decode()
    assert 'name="is_superuser"' not in page and 'name="role"' not in page and 'name="username"' in page
    assert 'name="role"' in browser(staff("owner", "acme")).get(user_change).content.decode()
    assert viewer.get("/admin/orgs/auditrecord/").status_code == 403
    assert admin.get("/admin/orgs/auditrecord/").status_code == 200


def ant_connects(token: str) -> bool:
    """Whether the ``ws/ants`` consumer accepts a connection with ``token``."""
    scope = {"headers": [(b"authorization", f"Bearer {token}".encode())], "user": AnonymousUser()}
    return authenticate(scope) is not None


@pytest.mark.django_db
def test_an_ant_registers_only_with_ant_register(alice):
    for role, allowed in (("viewer", False), ("member", False), ("admin", True), ("owner", True)):
        user = services.user_ensure(username=f"ws-{role}", org_name="acme", create=True, role=role)
        assert ant_connects(services.token_issue(user=user).plain) is allowed, role
    # a token narrowed to registering ants is enough; an owner's read-only token is not
    assert ant_connects(services.token_issue(user=alice.user, scopes=["Ant:Register"]).plain)
    assert not ant_connects(services.token_issue(user=alice.user, scopes=["viewer"]).plain)


@pytest.mark.django_db
def test_every_role_watches_a_request_and_nobody_from_elsewhere(acme, bob):
    request = acme["request"]
    for role in ("viewer", "member", "admin", "owner"):
        user = services.user_ensure(username=f"watch-{role}", org_name="acme", create=True, role=role)
        assert request_snapshot(user, request.pk)["job_request_id"] == request.pk
    assert request_snapshot(bob.user, request.pk) is None
    assert request_snapshot(AnonymousUser(), request.pk) is None


@pytest.mark.django_db
def test_the_account_page_issues_a_read_only_token(alice):
    from orgs import roles
    from orgs.models import ApiToken

    page = browser(alice.user).post("/account/tokens", {"name": "ro", "scope": "viewer"})
    assert page.status_code == 200 and 'id="new-token"' in page.content.decode()
    assert set(ApiToken.objects.get(user=alice.user, name="ro").scopes) == roles.ROLE_PERMISSIONS["viewer"]
