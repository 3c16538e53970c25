"""The audit log: changes through the API, the web pages and the admin are recorded (who, what,
which object, from where; never a secret value); GET /api/audits filters them, per organization."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from orgs import services
from orgs.models import ApiToken, AuditRecord, OrgConfig, User
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = "job_type: audited-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo hi]\n"
SECRET = "very-secret-value-4711"


def _client_of(user: User) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {services.token_issue(user=user, name='audit-test').plain}"
    )
    return client


def _actions(org_id: int) -> list[str]:
    return list(AuditRecord.objects.filter(organization_id=org_id).values_list("action", flat=True))


def _no_secret_anywhere() -> None:
    for record in AuditRecord.objects.all():
        assert SECRET not in record.summary and SECRET not in json.dumps(record.data), record


def test_api_changes_are_recorded_with_who_what_and_where(api, alice):  # type: ignore[no-untyped-def]
    definition = upload(api, DEFINITION).json()
    key = definition["id"]
    assert api.post(f"/api/jobs/definitions/{key}/pause").status_code == 200
    assert api.post(f"/api/jobs/definitions/{key}/unpause").status_code == 200
    config = api.post(f"/api/jobs/definitions/{key}/configs", {"name": "K", "value": SECRET, "secret": True},
                      format="json").json()  # fmt: skip
    api.put(f"/api/jobs/definitions/{key}/configs/{config['id']}", {"name": "K", "value": SECRET + "2", "secret": True},
            format="json")  # fmt: skip
    api.delete(f"/api/jobs/definitions/{key}/configs/{config['id']}")
    request = api.post("/api/jobs/requests", {"job_type": "audited-job"}, format="json").json()
    assert api.post(f"/api/jobs/requests/{request['id']}/cancel").status_code == 200
    assert api.post(f"/api/jobs/requests/{request['id']}/restart?hard=true").status_code == 200
    api.post(
        f"/api/orgs/{alice.org_id}/configs", {"name": "ORG_S", "value": SECRET, "secret": True}, format="json"
    )
    api.post("/api/users/configs", {"name": "MINE", "value": SECRET, "secret": True}, format="json")
    token = api.post(
        f"/api/users/{alice.user.pk}/tokens", {"token": "ci", "scopes": ["viewer"]}, format="json"
    )
    api.delete(f"/api/users/{alice.user.pk}/tokens/{token.json()['id']}")
    api.post("/api/subscriptions", {"policy": "BASIC", "cpu_quota": 10}, format="json")
    member = User.objects.create_user(username="mia", organization_id=alice.org_id, role="member")
    api.put(f"/api/users/{member.pk}", {"role": "viewer"}, format="json")
    api.delete(f"/api/jobs/definitions/{key}")

    actions = _actions(alice.org_id)
    for expected in (
        "JobDefinition:Upload", "JobDefinition:Pause", "JobDefinition:Enable", "JobConfig:Create",
        "JobConfig:Update", "JobConfig:Delete", "JobRequest:Submit", "JobRequest:Cancel", "JobRequest:Restart",
        "OrgConfig:Create", "UserConfig:Create", "Token:Create", "Token:Delete", "Subscription:Create",
        "User:Update", "JobDefinition:Delete",
    ):  # fmt: skip
        assert expected in actions, expected
    cancel = AuditRecord.objects.get(action="JobRequest:Cancel")
    assert (cancel.username, cancel.object_type, cancel.object_id) == (
        "alice",
        "JobRequest",
        str(request["id"]),
    )
    assert cancel.token_name == "default" and cancel.remote_addr == "127.0.0.1"
    assert AuditRecord.objects.get(action="JobRequest:Restart").data["hard"] is True
    _no_secret_anywhere()


def test_web_pages_and_admin_changes_are_recorded(api, alice):  # type: ignore[no-untyped-def]
    definition = upload(api, DEFINITION).json()
    request = api.post("/api/jobs/requests", {"job_type": "audited-job"}, format="json").json()
    AuditRecord.objects.all().delete()
    web = Client()
    web.force_login(alice.user)
    assert web.post(f"/jobs/definitions/{definition['id']}/toggle").status_code == 302
    assert web.post(f"/jobs/requests/{request['id']}/cancel").status_code == 302
    web.post(f"/jobs/definitions/{definition['id']}/configs", {"name": "W", "value": SECRET, "secret": "on"})
    web.post("/account/tokens", {"name": "web-token", "scope": "viewer"})
    token = ApiToken.objects.get(name="web-token")
    web.post(f"/account/tokens/{token.pk}/delete")
    # the admin: change an organization config's secret value
    alice.user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_orgconfig", "change_orgconfig"])
    )
    config = services.config_save(
        OrgConfig(organization_id=alice.org_id), name="ADM", value="x" * 12, secret=True
    )
    resp = web.post(
        f"/admin/orgs/orgconfig/{config.pk}/change/", {"name": "ADM", "secret": "on", "new_value": SECRET}
    )
    assert resp.status_code == 302, resp.content.decode()[:3000]

    records = {r.action: r for r in AuditRecord.objects.filter(organization_id=alice.org_id)}
    assert {"JobDefinition:Pause", "JobRequest:Cancel", "JobConfig:Create", "Token:Create", "Token:Delete",
            "OrgConfig:Update"} <= set(records)  # fmt: skip
    for record in records.values():
        assert record.username == "alice" and record.token_name == "" and record.remote_addr == "127.0.0.1"
    assert records["OrgConfig:Update"].summary.startswith("admin: changed")
    _no_secret_anywhere()


def _member_api(org_name: str, username: str, role: str) -> APIClient:
    return _client_of(services.user_ensure(username=username, org_name=org_name, create=True, role=role))


def test_api_audits_filters_tenancy_and_roles(api, bob_api, alice, bob):  # type: ignore[no-untyped-def]
    key = upload(api, DEFINITION).json()["id"]
    api.post(f"/api/jobs/definitions/{key}/pause")
    upload(bob_api, DEFINITION)

    page = api.get("/api/audits").json()
    assert {"Records", "TotalRecords", "Page", "PageSize", "TotalPages"} <= set(page)
    assert {r["organization_id"] for r in page["Records"]} == {alice.org_id}
    assert [r["kind"] for r in api.get("/api/audits?kind=JobDefinition:Pause").json()["Records"]] == [
        "JobDefinition:Pause"
    ]
    assert {r["kind"] for r in api.get("/api/audits?kind=JobDefinition").json()["Records"]} == {
        "JobDefinition:Upload", "JobDefinition:Pause"
    }  # fmt: skip
    assert api.get("/api/audits?user=nobody").json()["TotalRecords"] == 0
    assert api.get("/api/audits?user=alice").json()["TotalRecords"] >= 2
    assert api.get(f"/api/audits?user={alice.user.pk}").json()["TotalRecords"] >= 2
    by_object = api.get(f"/api/audits?object_type=JobDefinition&object_id={key}").json()
    assert by_object["TotalRecords"] == 2
    assert api.get("/api/audits?from=2000-01-01&to=2999-12-31").json()["TotalRecords"] >= 2
    assert api.get("/api/audits?to=2000-01-01").json()["TotalRecords"] == 0
    today = timezone.localdate().isoformat()  # a date-only ``to`` takes in its whole day
    assert api.get(f"/api/audits?from={today}&to={today}").json()["TotalRecords"] >= 2
    for bad, field in (("from=yesterday", "from"), ("to=2026-13-45", "to"), ("organization_id=x", "organization_id"), ("to=9999-12-31", "to"),
                       ("from=2026-02-01&to=2026-01-01", "to")):  # fmt: skip
        resp = api.get(f"/api/audits?{bad}")
        assert resp.status_code == 400 and resp.json()["error"].startswith(f"{field}:"), (bad, resp.content)

    # bob sees only globex's records
    assert {r["organization_id"] for r in bob_api.get("/api/audits").json()["Records"]} == {bob.org_id}
    # admin+ only
    assert _member_api("acme", "acme-admin", "admin").get("/api/audits").status_code == 200
    assert _member_api("acme", "acme-member", "member").get("/api/audits").status_code == 403
    assert _member_api("acme", "acme-viewer", "viewer").get("/api/audits").status_code == 403
    # a superuser sees every organization
    root = User.objects.create_superuser(username="root", password="pw-root-123")
    as_root = APIClient()
    as_root.force_login(root)  # a superuser without an organization: a session, no token
    orgs = {r["organization_id"] for r in as_root.get("/api/audits?page_size=100").json()["Records"]}
    assert {alice.org_id, bob.org_id} <= orgs


def test_audit_page_lists_filters_and_is_role_gated(api, alice, bob_api):  # type: ignore[no-untyped-def]
    key = upload(api, DEFINITION).json()["id"]
    api.post(f"/api/jobs/definitions/{key}/pause")
    upload(bob_api, DEFINITION.replace("audited-job", "globex-job"))
    web = Client()
    web.force_login(alice.user)
    page = web.get("/account/audit").content.decode()
    assert "JobDefinition:Pause" in page and "JobDefinition:Upload" in page and "globex-job" not in page
    filtered = web.get("/account/audit?kind=JobDefinition:Pause").content.decode()
    assert "JobDefinition:Pause" in filtered and "JobDefinition:Upload" not in filtered
    bad = web.get("/account/audit?from=someday")
    assert bad.status_code == 400 and "from: not an ISO date" in bad.content.decode()
    viewer = services.user_ensure(username="acme-viewer", org_name="acme", create=True, role="viewer")
    web.force_login(viewer)
    assert web.get("/account/audit").status_code == 403
    assert "Audit log" not in web.get("/account").content.decode()
