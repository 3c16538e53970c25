"""No endpoint shows or changes another organization's objects: 404, never the data."""

import pytest

from jobs.models import JobConfig, JobDefinition
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: private-job
tasks:
- task_type: only
  method: SHELL
  script: [echo hi]
"""


@pytest.fixture
def acme_objects(api):  # type: ignore[no-untyped-def]
    definition = upload(api, DEFINITION).json()
    config = api.post(
        f"/api/jobs/definitions/{definition['id']}/configs", {"name": "Key", "value": "v"}, format="json"
    ).json()
    return {"def": definition["id"], "type": definition["job_type"], "config": config["id"]}


def endpoints(o: dict) -> list[tuple[str, str, dict | None]]:
    d, t, c = o["def"], o["type"], o["config"]
    return [
        ("get", f"/api/jobs/definitions/{d}", None),
        ("get", f"/api/jobs/definitions/{t}", None),
        ("get", f"/api/jobs/definitions/{t}/yaml", None),
        ("get", f"/api/jobs/definitions/{d}/dot", None),
        ("get", f"/api/jobs/definitions/{d}/stats", None),
        ("post", f"/api/jobs/definitions/{d}/disable", None),
        ("post", f"/api/jobs/definitions/{d}/enable", None),
        ("put", f"/api/jobs/definitions/{d}/concurrency", {"concurrency": 9}),
        ("get", f"/api/jobs/definitions/{d}/configs", None),
        ("post", f"/api/jobs/definitions/{d}/configs", {"name": "Evil", "value": "x"}),
        ("get", f"/api/jobs/definitions/{d}/configs/{c}", None),
        ("put", f"/api/jobs/definitions/{d}/configs/{c}", {"name": "Key", "value": "evil"}),
        ("delete", f"/api/jobs/definitions/{d}/configs/{c}", None),
        ("delete", f"/api/jobs/definitions/{d}", None),
    ]


def test_another_organization_gets_404_everywhere(api, bob_api, acme_objects):
    for method, url, body in endpoints(acme_objects):
        resp = getattr(bob_api, method)(url, body, format="json") if body else getattr(bob_api, method)(url)
        assert resp.status_code == 404, (method, url, resp.status_code)
        assert "private-job" not in resp.content.decode()
    # and nothing changed
    definition = JobDefinition.objects.get(pk=acme_objects["def"])
    assert not definition.disabled and definition.deleted_at is None and definition.max_concurrency != 9
    assert JobConfig.objects.get(pk=acme_objects["config"]).value == "v"
    assert not JobConfig.objects.filter(name="Evil").exists()
    assert bob_api.get("/api/jobs/definitions").json()["TotalRecords"] == 0
    # the owner still sees everything
    for method, url, _ in endpoints(acme_objects):
        if method == "get":
            assert api.get(url).status_code == 200, url


def test_same_job_type_in_two_organizations_is_independent(api, bob_api):
    a = upload(api, DEFINITION).json()
    b = upload(bob_api, DEFINITION).json()
    assert a["id"] != b["id"] and a["version"] == b["version"] == 1
    assert bob_api.get(f"/api/jobs/definitions/{a['id']}").status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Bearer fmc_forged", "Token abc", "Bearer a b"]
)
def test_missing_or_bad_token_is_refused(anon_api, header):
    if header:
        anon_api.credentials(HTTP_AUTHORIZATION=header)
    resp = anon_api.get("/api/jobs/definitions")
    assert resp.status_code in (401, 403)
    assert resp.json()["error"]


def test_revoked_token_is_refused(alice, api):
    from orgs.models import ApiToken

    assert api.get("/api/jobs/definitions").status_code == 200
    ApiToken.objects.filter(user=alice.user).delete()
    assert api.get("/api/jobs/definitions").status_code == 401
