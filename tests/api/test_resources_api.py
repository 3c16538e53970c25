"""Job resources API (/api/jobs/resources): the reference's fields and list shape, create, read,
update, configs (secrets masked), disable/enable, delete, validation naming the field, tenancy,
and a task definition's `resources` block checked at upload."""

import pytest
from django.contrib.auth.models import Permission

from jobs.models import JobResource, JobResourceConfig
from tests.conftest import upload

pytestmark = pytest.mark.django_db

STAGING = {
    "resource_type": "deploy-slot", "description": "staging deploys", "platform": "staging",
    "category": "deploy", "tags": ["EU", "k8s"], "quota": 2, "lease_timeout": "5m",
    "resource_variables": {"Host": "staging.example", "Port": 8443},
}  # fmt: skip


def test_create_get_list_update_delete(api, alice):
    created = api.post("/api/jobs/resources", STAGING, format="json")
    assert created.status_code == 201, created.content
    row = created.json()
    assert (
        row["resource_type"] == "deploy-slot" and row["platform"] == "staging" and row["category"] == "deploy"
    )
    assert row["tags"] == ["eu", "k8s"] and row["quota"] == 2 and row["lease_timeout"] == 300
    assert row["organization_id"] == alice.org_id and row["disabled"] is False and row["valid_status"] is True
    assert row["resource_variables"] == {"Host": "staging.example", "Port": "8443"}
    assert row["uses"] == [] and row["leased"] == 0 and row["remaining_quota"] == 2
    got = api.get(f"/api/jobs/resources/{row['id']}")
    assert got.status_code == 200 and got.json()["description"] == "staging deploys"
    listing = api.get("/api/jobs/resources").json()
    assert set(listing) == {"Records", "TotalRecords", "Page", "PageSize", "TotalPages"}
    assert [r["id"] for r in listing["Records"]] == [row["id"]] and listing["TotalRecords"] == 1
    assert api.get("/api/jobs/resources?resource_type=other").json()["TotalRecords"] == 0
    assert api.get("/api/jobs/resources?platform=staging").json()["TotalRecords"] == 1
    put = api.put(
        f"/api/jobs/resources/{row['id']}", {"quota": 3, "resource_variables": {"Host": "h2"}}, format="json"
    )
    assert put.status_code == 200, put.content
    assert put.json()["quota"] == 3 and put.json()["resource_type"] == "deploy-slot"
    assert put.json()["resource_variables"] == {"Host": "h2", "Port": "8443"}
    assert api.delete(f"/api/jobs/resources/{row['id']}").status_code == 200
    assert api.get(f"/api/jobs/resources/{row['id']}").status_code == 404


def test_configs_secrets_are_masked_and_encrypted(api):
    row = api.post("/api/jobs/resources", {"resource_type": "db", "quota": 1}, format="json").json()
    added = api.post(f"/api/jobs/resources/{row['id']}/configs", {"name": "Password", "value": "hunter2",
                                                                   "secret": True}, format="json")  # fmt: skip
    assert added.status_code == 200, added.content
    assert added.json()["value"] == "****" and added.json()["secret"] is True
    stored = JobResourceConfig.objects.get(pk=added.json()["id"])
    assert "hunter2" not in stored.value and stored.plain_value() == "hunter2"
    detail = api.get(f"/api/jobs/resources/{row['id']}").json()
    assert detail["resource_variables"] == {"Password": "****"}
    assert "hunter2" not in str(detail)
    gone = api.delete(f"/api/jobs/resources/{row['id']}/configs/{added.json()['id']}")
    assert gone.status_code == 200
    assert api.get(f"/api/jobs/resources/{row['id']}").json()["configs"] == []
    assert api.delete(f"/api/jobs/resources/{row['id']}/configs/{added.json()['id']}").status_code == 404


def test_disable_and_enable(api):
    row = api.post("/api/jobs/resources", {"resource_type": "db", "quota": 1}, format="json").json()
    assert api.post(f"/api/jobs/resources/{row['id']}/disable").status_code == 200
    assert api.get(f"/api/jobs/resources/{row['id']}").json()["disabled"] is True
    assert api.post(f"/api/jobs/resources/{row['id']}/enable").status_code == 200
    assert JobResource.objects.get(pk=row["id"]).disabled is False


def test_the_references_json_lease_timeout_in_nanoseconds_and_yaml_body(api):
    ns = api.post("/api/jobs/resources", {"resource_type": "lic", "quota": 5, "lease_timeout": 60_000_000_000},
                  format="json")  # fmt: skip
    assert ns.status_code == 201 and ns.json()["lease_timeout"] == 60
    yaml = api.post("/api/jobs/resources", data=b"resource_type: lic\nquota: 1\nlease_timeout: 90\n",
                    content_type="application/yaml")  # fmt: skip
    assert yaml.status_code == 201, yaml.content
    assert yaml.json()["lease_timeout"] == 90


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quota": 1}, "resource_type"),
        ({"resource_type": "x"}, "quota"),
        ({"resource_type": "x", "quota": 0}, "quota"),
        ({"resource_type": "x", "quota": "two"}, "quota"),
        ({"resource_type": "x", "quota": 1, "lease_timeout": "soon"}, "lease_timeout"),
        ({"resource_type": "x", "quota": 1, "lease_timeout": 0}, "lease_timeout"),
        ({"resource_type": "x", "quota": 1, "tags": "eu"}, "tags"),
        ({"resource_type": "x", "quota": 1, "resource_variables": {"bad name": "v"}}, "resource_variables"),
        ({"resource_type": "x" * 101, "quota": 1}, "resource_type"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, field):
    resp = api.post("/api/jobs/resources", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["error"]


def test_bad_config_is_a_400_and_a_bad_put_changes_nothing(api):
    row = api.post("/api/jobs/resources", {"resource_type": "db", "quota": 1}, format="json").json()
    resp = api.post(f"/api/jobs/resources/{row['id']}/configs", {"value": "v"}, format="json")
    assert resp.status_code == 400 and "name" in resp.json()["error"]
    resp = api.put(f"/api/jobs/resources/{row['id']}", {"quota": -1}, format="json")
    assert resp.status_code == 400 and "quota" in resp.json()["error"]
    assert JobResource.objects.get(pk=row["id"]).quota == 1


def test_another_organizations_resource_is_a_404(api, bob_api):
    row = api.post("/api/jobs/resources", STAGING, format="json").json()
    path = f"/api/jobs/resources/{row['id']}"
    config_id = row["configs"][0]["id"]
    assert bob_api.get(path).status_code == 404
    assert bob_api.put(path, {"quota": 9}, format="json").status_code == 404
    assert bob_api.post(f"{path}/disable").status_code == 404
    assert bob_api.post(f"{path}/configs", {"name": "N", "value": "v"}, format="json").status_code == 404
    assert bob_api.delete(f"{path}/configs/{config_id}").status_code == 404
    assert bob_api.delete(path).status_code == 404
    assert bob_api.get("/api/jobs/resources").json()["TotalRecords"] == 0
    assert JobResource.objects.get(pk=row["id"]).quota == 2


TASK_CLAIM = """\
job_type: claims
tasks:
- task_type: deploy
  method: SHELL
  script: [echo hi]
  resources:
    resource_type: deploy-slot
    value: {value}
    tags: [eu]
"""


def test_a_tasks_resources_block_is_checked_at_upload(api):
    ok = upload(api, TASK_CLAIM.format(value=1))
    assert ok.status_code in (200, 201), ok.content
    assert not [w for w in ok.json().get("warnings", []) if "resources" in str(w)]
    bad = upload(api, TASK_CLAIM.format(value="-2"))
    assert bad.status_code == 400
    assert "resources.value" in str(bad.json()) and "deploy" in str(bad.json())
    missing = upload(api, TASK_CLAIM.format(value=1).replace("resource_type: deploy-slot", "kind: x"))
    assert missing.status_code == 400 and "resources.resource_type" in str(missing.json())


def test_the_admin_shows_an_organizations_own_resources(api, alice, bob, client):
    row = api.post("/api/jobs/resources", STAGING, format="json").json()
    for member in (alice, bob):  # Django's model permissions, on top of the role's
        member.user.user_permissions.add(
            *Permission.objects.filter(content_type__model__startswith="jobresource")
        )
    client.login(username="alice", password="pw-alice")
    assert client.get("/admin/jobs/jobresource/").status_code == 200
    page = client.get(f"/admin/jobs/jobresource/{row['id']}/change/")
    assert page.status_code == 200 and b"deploy-slot" in page.content and b"staging.example" in page.content
    client.logout()
    client.login(username="bob", password="pw-bob")
    assert b"deploy-slot" not in client.get("/admin/jobs/jobresource/").content
    assert client.get(f"/admin/jobs/jobresource/{row['id']}/change/").status_code in (302, 404)


def test_superuser_admin_resource_pages_render(admin_client, api):
    row = api.post("/api/jobs/resources", STAGING, format="json").json()
    for url in ("/admin/jobs/jobresource/", "/admin/jobs/jobresource/add/", "/admin/jobs/jobresourceuse/",
                f"/admin/jobs/jobresource/{row['id']}/change/"):  # fmt: skip
        assert admin_client.get(url).status_code == 200, url


def test_the_resources_page_lists_the_organizations_resources_with_masked_secrets(api, bob_api, client):
    api.post("/api/jobs/resources", {**STAGING, "configs": [{"name": "Token", "value": "tok-s3cret", "secret": True}]},
             format="json")  # fmt: skip
    bob_api.post("/api/jobs/resources", {"resource_type": "globex-slot", "quota": 1}, format="json")
    client.login(username="alice", password="pw-alice")
    page = client.get("/jobs/resources")
    assert page.status_code == 200
    text = page.content.decode()
    assert "deploy-slot" in text and "0 of 2" in text and "Host=staging.example" in text
    assert "Token=****" in text and "tok-s3cret" not in text and "globex-slot" not in text
