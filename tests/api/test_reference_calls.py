"""The reference system's documented calls, as its guides write them, on the endpoints this
project has: job configs (capitalised keys, YAML bodies, curl's default content type), definition
uploads without a YAML type, versions, filters and their spellings, restart ``?version=``,
artifacts by ``job_id`` and by checksum. Each call here failed or was ignored before."""

import hashlib
import shutil

import pytest

from jobs.models import JobConfig, JobRequest
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: ref-calls
platform: linux
tasks:
- task_type: build
  method: SHELL
  script: ["echo {{.GithubToken}}"]
"""


@pytest.fixture
def job(api):  # type: ignore[no-untyped-def]
    resp = upload(api, DEFINITION)
    assert resp.status_code == 201, resp.content
    return resp.json()


def configs_url(job: dict) -> str:  # type: ignore[type-arg]
    return f"/api/jobs/definitions/{job['id']}/configs"


# -- job configs ----------------------------------------------------------------------------------


def test_config_with_capitalised_keys_as_in_the_guides(api, job):
    # docs/11-ci-cd-pipelines.md: -d '{"Name": "GithubToken", "Value": "ghp_...", "Secret": true}'
    resp = api.post(
        configs_url(job), {"Name": "GithubToken", "Value": "ghp_secret", "Secret": True}, format="json"
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["name"] == "GithubToken" and body["secret"] is True and body["value"] == "****"
    row = JobConfig.objects.get(pk=body["id"])
    assert row.plain_value() == "ghp_secret" and row.value != "ghp_secret"  # encrypted at rest


def test_config_lowercase_keys_keep_working(api, job):
    resp = api.post(configs_url(job), {"name": "Region", "value": "eu", "secret": False}, format="json")
    assert resp.status_code == 201 and resp.json()["value"] == "eu"


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml", "application/x-yaml"])
def test_config_from_a_yaml_body(api, job, content_type):
    resp = api.post(
        configs_url(job),
        data=b"Name: WebhookSecret\nValue: s3cr3t\nSecret: true\n",
        content_type=content_type,
    )
    assert resp.status_code == 201, resp.content
    assert JobConfig.objects.get(pk=resp.json()["id"]).plain_value() == "s3cr3t"


def test_config_json_sent_with_curls_default_type(api, job):
    # curl -d '{...}' without -H says application/x-www-form-urlencoded
    resp = api.post(
        configs_url(job),
        data=b'{"Name": "Key", "Value": "v"}',
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["name"] == "Key"


def test_config_post_of_an_existing_name_updates_it(api, job):
    first = api.post(configs_url(job), {"Name": "Key", "Value": "one"}, format="json")
    again = api.post(configs_url(job), {"Name": "Key", "Value": "two"}, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["value"] == "two"
    assert JobConfig.objects.filter(job_type="ref-calls", name="Key").count() == 1


def test_config_put_with_capitalised_keys_and_the_mask_keeps_the_secret(api, job):
    made = api.post(
        configs_url(job), {"Name": "Token", "Value": "t0ken", "Secret": True}, format="json"
    ).json()
    url = f"{configs_url(job)}/{made['id']}"
    resp = api.put(url, {"Name": "Token", "Value": "****", "Secret": True}, format="json")
    assert resp.status_code == 200, resp.content
    assert JobConfig.objects.get(pk=made["id"]).plain_value() == "t0ken"
    resp = api.put(url, data=b"name: Token\nvalue: fresh\nsecret: true\n", content_type="application/yaml")
    assert resp.status_code == 200 and JobConfig.objects.get(pk=made["id"]).plain_value() == "fresh"


@pytest.mark.parametrize(
    ("data", "content_type", "needle"),
    [
        (b"Name: [unclosed", "application/yaml", "invalid YAML"),
        (b"- a\n- b\n", "application/yaml", "object of fields"),
        (b'{"Name": ', "application/json", "invalid JSON"),
        (b'{"Value": "v"}', "application/json", "name"),
    ],
)
def test_bad_config_bodies_are_400_naming_the_problem(api, job, data, content_type, needle):
    resp = api.post(configs_url(job), data=data, content_type=content_type)
    assert resp.status_code == 400, resp.content
    assert needle in resp.json()["error"]


# -- job definitions ------------------------------------------------------------------------------


def test_definition_upload_without_a_yaml_type_is_read_as_yaml(api):
    # docs/14-advanced-workflows.md: "The server also auto-detects YAML when Content-Type is omitted"
    resp = upload(api, DEFINITION, content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 201, resp.content
    assert resp.json()["job_type"] == "ref-calls" and resp.json()["platform"] == "linux"


def test_definitions_filter_by_platform_and_page_size(api, job):
    upload(api, DEFINITION.replace("ref-calls", "other").replace("linux", "windows"))
    assert [d["job_type"] for d in api.get("/api/jobs/definitions?platform=linux").json()["Records"]] == [
        "ref-calls"
    ]
    page = api.get("/api/jobs/definitions?page_size=1&page=1").json()
    assert page["PageSize"] == 1 and page["TotalRecords"] == 2 and len(page["Records"]) == 1


def test_definition_versions(api, job):
    upload(api, DEFINITION.replace("echo", "echo v2"))
    resp = api.get("/api/jobs/definitions/type/ref-calls/versions")
    assert resp.status_code == 200, resp.content
    records = resp.json()["Records"]
    assert [(r["version"], r["active"]) for r in records] == [(2, True), (1, False)]
    assert api.get("/api/jobs/definitions/type/nothing-like-it/versions").status_code == 404


def test_definition_dot_png(api, job):
    resp = api.get(f"/api/jobs/definitions/{job['id']}/dot.png")
    if shutil.which("dot") is None:
        assert resp.status_code == 503
    else:
        assert resp.status_code == 200 and resp.content.startswith(b"\x89PNG")


def test_concurrency_as_a_form_value(api, job):
    # the reference reads c.FormValue("concurrency")
    resp = api.put(
        f"/api/jobs/definitions/{job['id']}/concurrency",
        data=b"concurrency=7",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["max_concurrency"] == 7


# -- job requests ---------------------------------------------------------------------------------


def submit(api, body):  # type: ignore[no-untyped-def]
    resp = api.post("/api/jobs/requests", body, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()


def test_submit_as_in_advanced_k8_guide_with_extra_fields(api, job):
    # docs/advanced_k8.md sends org_unit and username too: they are not ours to act on
    body = submit(api, {"job_type": "ref-calls", "org_unit": "myorg", "username": "myuser",
                        "params": {"Platform": "Test"}})  # fmt: skip
    assert body["job_state"] == "PENDING" and body["platform"] == "linux"


def test_request_filters_and_their_spellings(api, job):
    upload(api, DEFINITION.replace("ref-calls", "other").replace("linux", "windows"))
    mine = submit(api, {"job_type": "ref-calls"})
    other = submit(api, {"job_type": "other"})
    api.post(f"/api/jobs/requests/{other['id']}/cancel")

    def ids(query: str) -> list[int]:
        resp = api.get(f"/api/jobs/requests?{query}")
        assert resp.status_code == 200, resp.content
        return [r["id"] for r in resp.json()["Records"]]

    assert ids("job_type=ref-calls") == ids("jobType=ref-calls") == [mine["id"]]
    assert ids("platform=windows") == [other["id"]]
    assert ids("job_state=CANCELLED") == [other["id"]]
    assert ids("state=PENDING,EXECUTING") == [mine["id"]]
    assert ids("page_size=1") == [other["id"]]


def test_restart_with_version(api, job):
    first = submit(api, {"job_type": "ref-calls"})
    api.post(f"/api/jobs/requests/{first['id']}/cancel")
    v2 = upload(api, DEFINITION.replace("echo", "echo v2")).json()
    url = f"/api/jobs/requests/{first['id']}/restart"
    # soft restart without version: the definition it ran
    assert api.post(url).status_code == 200
    assert JobRequest.objects.get(pk=first["id"]).job_definition_id == job["id"]
    api.post(f"/api/jobs/requests/{first['id']}/cancel")
    assert api.post(f"{url}?version=latest").status_code == 200
    assert JobRequest.objects.get(pk=first["id"]).job_definition_id == v2["id"]
    api.post(f"/api/jobs/requests/{first['id']}/cancel")
    assert api.post(f"{url}?version=1").status_code == 200
    assert JobRequest.objects.get(pk=first["id"]).job_definition_id == job["id"]
    api.post(f"/api/jobs/requests/{first['id']}/cancel")
    bad = api.post(f"{url}?version=9.9.9")
    assert bad.status_code == 400 and "9.9.9" in bad.json()["error"]
    # a hard restart runs the latest definition, as in the reference
    assert api.post(f"{url}?hard=true").status_code == 200
    assert JobRequest.objects.get(pk=first["id"]).job_definition_id == v2["id"]


# -- artifacts ------------------------------------------------------------------------------------


def test_artifacts_by_job_id_and_download_by_sha256(api, bob_api, job):
    request = submit(api, {"job_type": "ref-calls"})
    content = b"report body"
    made = api.post(
        f"/api/artifacts?name=report.txt&job_request_id={request['id']}",
        data=content,
        content_type="text/plain",
    )
    assert made.status_code == 201, made.content
    # docs/ai-agents.md: /api/artifacts?job_id=<id>
    listed = api.get(f"/api/artifacts?job_id={request['id']}").json()
    assert [a["id"] for a in listed["Records"]] == [made.json()["id"]]
    assert api.get("/api/artifacts?job_id=abc").status_code == 400
    # docs/16-api-reference.md: "id (string): The ID or SHA256 of the artifact"
    sha = hashlib.sha256(content).hexdigest()
    got = api.get(f"/api/artifacts/{sha}/download")
    assert got.status_code == 200 and b"".join(got.streaming_content) == content
    assert bob_api.get(f"/api/artifacts/{sha}/download").status_code == 404


def test_health_under_api(api):
    assert api.get("/api/health").status_code == 200


# -- documented calls this project does not do: a 400 that says so ----------------------------------


def test_unsupported_reference_calls_answer_400_naming_them(api, job):
    request = submit(api, {"job_type": "ref-calls"})
    for method, url, needle in [
        ("get", f"/api/jobs/definitions/{job['id']}/mermaid", "Mermaid"),
        ("get", f"/api/jobs/requests/{request['id']}/mermaid", "Mermaid"),
    ]:
        resp = getattr(api, method)(url)
        assert resp.status_code == 400, (url, resp.content)
        assert needle in resp.json()["error"]


def test_unsupported_calls_still_need_a_token(anon_api):
    assert anon_api.get("/api/jobs/requests/1/mermaid").status_code in (401, 403)
