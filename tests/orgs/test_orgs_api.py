"""The organizations, users, tokens, configs and subscriptions API: secrets, reveals and their
audit records, user configs over org configs, token scopes, role grants, org creation."""

import importlib
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from rest_framework.test import APIClient

from jobs.domain.context import secrets_and_values
from jobs.models import JobRequest
from orgs import roles, services
from orgs.models import ApiToken, AuditRecord, Organization, Subscription, User
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = "job_type: cfg-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: ['echo {{.Shared}}']\n"


def client_of(user: User, scopes: list[str] | None = None) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {services.token_issue(user=user, scopes=scopes or []).plain}"
    )
    return client


def member(alice, role: str) -> User:  # type: ignore[no-untyped-def]
    return services.user_ensure(username=f"acme-{role}", org_name="acme", create=True, role=role)


def test_org_config_secret_is_masked_and_reveal_is_audited(alice, api):
    url = f"/api/orgs/{alice.org_id}/configs"
    created = api.post(url, {"name": "DeployKey", "value": "k3y-s3cr3t", "secret": True}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["value"] == "****"
    assert "k3y-s3cr3t" not in api.get(url).content.decode()
    assert api.get(url).json()["Records"][0]["value"] == "****"
    revealed = api.get(f"{url}/{created.json()['id']}/reveal", REMOTE_ADDR="10.1.2.3")
    assert revealed.json()["value"] == "k3y-s3cr3t"
    record = AuditRecord.objects.get(action="OrgConfig:Reveal")
    assert (record.user_id, record.organization_id, record.object_type) == (
        alice.user.pk,
        alice.org_id,
        "OrgConfig",
    )
    assert record.object_id == str(created.json()["id"]) and record.token is not None
    assert record.remote_addr == "10.1.2.3"
    assert "k3y-s3cr3t" not in f"{record.summary} {record.data}"
    # a member may use configs but not read secrets back
    assert client_of(member(alice, "member")).get(f"{url}/{created.json()['id']}/reveal").status_code == 403
    assert AuditRecord.objects.filter(action="OrgConfig:Reveal").count() == 1


def test_user_config_wins_over_org_config_in_the_submitters_jobs(alice, api):
    upload(api, DEFINITION)
    api.post(f"/api/orgs/{alice.org_id}/configs", {"name": "Shared", "value": "from-org"}, format="json")
    api.post(f"/api/orgs/{alice.org_id}/configs", {"name": "OrgOnly", "value": "o"}, format="json")
    mine = api.post(
        "/api/users/configs", {"name": "Shared", "value": "from-alice", "secret": True}, format="json"
    )
    assert mine.status_code == 201 and mine.json()["value"] == "****"
    assert api.get(f"/api/users/configs/{mine.json()['id']}/reveal").json()["value"] == "from-alice"
    assert AuditRecord.objects.filter(action="UserConfig:Reveal").exists()
    carol = member(alice, "member")
    ours = api.post("/api/jobs/requests", {"job_type": "cfg-job"}, format="json").json()
    theirs = client_of(carol).post("/api/jobs/requests", {"job_type": "cfg-job"}, format="json").json()
    values, secret = secrets_and_values(JobRequest.objects.get(pk=ours["id"]))
    assert values["Shared"] == "from-alice" and values["OrgOnly"] == "o" and "Shared" in secret
    values, secret = secrets_and_values(JobRequest.objects.get(pk=theirs["id"]))
    assert values["Shared"] == "from-org" and "Shared" not in secret
    # another member does not see alice's configs
    assert client_of(carol).get(f"/api/users/configs/{mine.json()['id']}").status_code == 404


def test_token_scopes_narrow_the_role(alice, api):
    upload(api, DEFINITION)
    uid = alice.user.pk
    read_only = api.post(f"/api/users/{uid}/tokens", {"token": "ro", "scopes": ["viewer"]}, format="json")
    assert read_only.status_code == 201, read_only.content
    plain = read_only.json()["api_token"]
    assert ApiToken.objects.get(pk=read_only.json()["id"]).digest == ApiToken.digest_of(plain)
    assert plain not in api.get(f"/api/users/{uid}/tokens").content.decode()
    ro = APIClient()
    ro.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert ro.get("/api/jobs/definitions").status_code == 200
    assert upload(ro, DEFINITION.replace("cfg-job", "other")).status_code == 403
    assert ro.post("/api/jobs/requests", {"job_type": "cfg-job"}, format="json").status_code == 403
    # a read-only token cannot mint a stronger one
    minted = ro.post(f"/api/users/{uid}/tokens", {"scopes": ["owner"]}, format="json")
    assert minted.status_code == 400 and "JobRequest:Submit" in minted.content.decode()
    ci = api.post(f"/api/users/{uid}/tokens", {"token": "ci", "scopes": ["JobRequest:Submit"]}, format="json")
    submit_only = APIClient()
    submit_only.credentials(HTTP_AUTHORIZATION=f"Bearer {ci.json()['api_token']}")
    assert submit_only.post("/api/jobs/requests", {"job_type": "cfg-job"}, format="json").status_code == 201
    assert submit_only.get("/api/jobs/requests").status_code == 403
    bad = api.post(f"/api/users/{uid}/tokens", {"scopes": ["Everything:Now"]}, format="json")
    assert bad.status_code == 400 and "Everything:Now" in bad.content.decode()
    assert api.delete(f"/api/users/{uid}/tokens/{ci.json()['id']}").status_code == 200
    assert submit_only.post("/api/jobs/requests", {"job_type": "cfg-job"}, format="json").status_code == 401


def test_a_token_cannot_mint_a_token_beyond_its_own_scope(alice):
    viewer_token = client_of(alice.user, ["viewer"])
    resp = viewer_token.post(f"/api/users/{alice.user.pk}/tokens", {"scopes": []}, format="json")
    assert resp.status_code == 201
    assert set(resp.json()["scopes"]) == roles.ROLE_PERMISSIONS["viewer"]


def test_roles_are_granted_only_up_to_ones_own(alice, api):
    admin = client_of(member(alice, "admin"))
    assert (
        admin.post("/api/users", {"username": "newowner", "role": "owner"}, format="json").status_code == 403
    )
    created = admin.post(
        "/api/users", {"username": "dan", "role": "member", "name": "Dan Lee"}, format="json"
    )
    assert (
        created.status_code == 201
        and created.json()["role"] == "member"
        and created.json()["name"] == "Dan Lee"
    )
    dan = User.objects.get(username="dan")
    assert dan.organization_id == alice.org_id
    # an admin cannot touch an owner; an owner promotes; nobody changes their own role
    assert admin.put(f"/api/users/{alice.user.pk}", {"role": "viewer"}, format="json").status_code == 403
    assert admin.put(f"/api/users/{alice.user.pk}", {"is_active": False}, format="json").status_code == 403
    assert (
        admin.put(f"/api/users/{alice.user.pk}/notify", {"email": "x@x.io"}, format="json").status_code == 403
    )
    assert api.put(f"/api/users/{dan.pk}", {"role": "admin"}, format="json").json()["role"] == "admin"
    assert api.put(f"/api/users/{alice.user.pk}", {"role": "viewer"}, format="json").status_code == 403
    # a viewer edits their own profile and notifications, nobody else's
    viewer = member(alice, "viewer")
    as_viewer = client_of(viewer)
    assert (
        as_viewer.put(f"/api/users/{viewer.pk}", {"email": "v@example.com"}, format="json").status_code == 200
    )
    notify = as_viewer.put(
        f"/api/users/{viewer.pk}/notify", {"email": "a@x.io,b@x.io", "when": "always"}, format="json"
    )
    assert notify.status_code == 200, notify.content
    assert notify.json()["notify"]["email"] == {"recipients": ["a@x.io", "b@x.io"], "when": "always"}
    assert as_viewer.put(f"/api/users/{viewer.pk}", {"role": "owner"}, format="json").status_code == 403
    assert as_viewer.put(f"/api/users/{dan.pk}", {"email": "x@example.com"}, format="json").status_code == 403
    assert (
        as_viewer.put(
            f"/api/users/{viewer.pk}/notify", {"email": "not-an-address"}, format="json"
        ).status_code
        == 400
    )
    assert api.delete(f"/api/users/{alice.user.pk}").status_code == 403
    assert api.delete(f"/api/users/{dan.pk}").status_code == 200
    assert AuditRecord.objects.filter(action="User:Delete", object_id=str(dan.pk), username="alice").exists()


def test_a_user_without_an_organization_creates_one_and_owns_it(alice, api):
    newcomer = User.objects.create_user(username="erin")
    client = APIClient()
    client.force_authenticate(newcomer)
    resp = client.post("/api/orgs", {"org_unit": "erin-corp", "bundle_id": "io.erin"}, format="json")
    assert resp.status_code == 201, resp.content
    newcomer.refresh_from_db()
    assert newcomer.organization.name == "erin-corp" and newcomer.role == roles.OWNER
    assert resp.json()["owner_user_id"] == newcomer.pk
    assert client.post("/api/orgs", {"name": "second"}, format="json").status_code == 403
    assert client.get("/api/orgs").json()["TotalRecords"] == 1
    root = User.objects.create_superuser(username="root", password="pw-root-123")
    su = APIClient()
    su.force_authenticate(root)
    assert su.post("/api/orgs", {"name": "acme"}, format="json").status_code == 400  # taken
    assert su.post("/api/orgs", {"name": "umbrella"}, format="json").status_code == 201
    assert su.get("/api/orgs").json()["TotalRecords"] == 3
    assert (
        api.put(f"/api/orgs/{alice.org_id}", {"max_concurrency": 5}, format="json").json()["max_concurrency"]
        == 5
    )
    assert api.delete(f"/api/orgs/{alice.org_id}").status_code == 200
    assert not Organization.objects.filter(pk=alice.org_id).exists()


def test_system_configs_are_for_superusers(api):
    root = User.objects.create_superuser(username="root", password="pw-root-123")
    su = APIClient()
    su.force_authenticate(root)  # a superuser of no organization
    created = su.post(
        "/api/configs", {"name": "smtp_password", "value": "pw!", "secret": True}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["value"] == "****" and created.json()["scope"] == "default"
    assert su.put(f"/api/configs/{created.json()['id']}", {"name": "smtp_password", "value": "new", "secret": True},
                  format="json").status_code == 200  # fmt: skip
    assert api.get("/api/configs").status_code == 403  # an owner is not a superuser


def test_subscriptions_one_active_per_organization(alice, api):
    first = api.post(
        "/api/subscriptions", {"policy": "BASIC", "cpu_quota": 3600, "max_concurrency": 2}, format="json"
    )
    assert first.status_code == 201, first.content
    second = api.post("/api/subscriptions", {"policy": "ENTERPRISE", "period": "ANNUAL"}, format="json")
    assert Subscription.objects.get(pk=first.json()["id"]).active is False
    assert api.get(f"/api/orgs/{alice.org_id}").json()["subscription"]["id"] == second.json()["id"]
    assert api.get("/api/subscriptions?active=true").json()["TotalRecords"] == 1
    assert api.post("/api/subscriptions", {"policy": "GOLD"}, format="json").status_code == 400
    assert client_of(member(alice, "admin")).post("/api/subscriptions", {}, format="json").status_code == 403


def test_create_api_token_with_role_and_scope():
    out = StringIO()
    call_command("create_api_token", "ci-bot", "--org", "initech", "--create", stdout=out)
    assert User.objects.get(username="ci-bot").role == roles.OWNER  # created the organization
    call_command("create_api_token", "dev", "--org", "initech", "--create", "--role", "viewer",
                 "--scope", "JobRequest:Read", stdout=out)  # fmt: skip
    token = ApiToken.objects.get(user__username="dev")
    assert token.user.role == "viewer" and token.scopes == ["JobRequest:Read"]
    with pytest.raises(Exception, match="unknown scope"):
        call_command("create_api_token", "dev", "--org", "initech", "--scope", "Nope", stdout=out)


def test_existing_members_become_owners_by_the_migration(alice):
    carol = services.user_ensure(username="carol", org_name="acme", create=True)
    loner = User.objects.create_user(username="loner")
    assert carol.role == roles.MEMBER
    migration = importlib.import_module("orgs.migrations.0002_roles_scopes_user_configs_subscriptions_audit")
    migration.existing_members_become_owners(apps, None)
    carol.refresh_from_db()
    loner.refresh_from_db()
    assert carol.role == roles.OWNER and loner.role == roles.MEMBER
