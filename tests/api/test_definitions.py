"""Job definitions API: uploads, versions, YAML and DOT, enable/disable, concurrency, configs."""

import json

import pytest
import yaml

from jobs.models import JobConfig, JobDefinition
from tests.conftest import example_paths, upload

pytestmark = pytest.mark.django_db

SIMPLE = """\
job_type: simple
description: two shell tasks
tasks:
- task_type: one
  method: SHELL
  script:
    - echo one
  on_completed: two
- task_type: two
  method: SHELL
  script:
    - echo two
"""


@pytest.mark.parametrize("path", example_paths(), ids=lambda p: p.name)
def test_every_example_uploads_and_comes_back(api, path):
    text = path.read_text()
    resp = upload(api, text)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    job_type = body["job_type"]
    assert body["version"] == 1
    back = api.get(f"/api/jobs/definitions/{job_type}/yaml")
    assert back.status_code == 200
    assert back.content.decode() == text
    dot = api.get(f"/api/jobs/definitions/{body['id']}/dot")
    assert dot.status_code == 200
    for task in body["tasks"]:
        assert f'"{task["task_type"]}"' in dot.content.decode()
    assert len(body["tasks"]) >= 1


def test_each_upload_is_a_new_version_and_latest_is_used(api):
    first = upload(api, SIMPLE).json()
    same = upload(api, SIMPLE)
    assert same.status_code == 200 and same.json()["id"] == first["id"]
    changed = upload(api, SIMPLE.replace("echo two", "echo 2"))
    assert changed.status_code == 201
    second = changed.json()
    assert second["version"] == 2
    assert api.get("/api/jobs/definitions/simple").json()["id"] == second["id"]
    assert api.get("/api/jobs/definitions/simple?version=1").json()["id"] == first["id"]
    listing = api.get("/api/jobs/definitions").json()
    assert listing["TotalRecords"] == 1 and listing["Records"][0]["version"] == 2
    assert JobDefinition.objects.filter(job_type="simple", is_latest=True).count() == 1


def test_json_upload(api):
    data = yaml.safe_load(SIMPLE)
    resp = api.post("/api/jobs/definitions", data=json.dumps(data), content_type="application/json")
    assert resp.status_code == 201, resp.content
    assert [t["task_type"] for t in resp.json()["tasks"]] == ["one", "two"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("job_type: x\ntasks:\n- task_type: a\n  script: [\n", "line"),
        ("tasks:\n- task_type: a\n  method: SHELL\n", "job_type"),
        (SIMPLE.replace("on_completed: two", "on_completed: tow"), "tow"),
        (SIMPLE.replace("task_type: two", "task_type: one"), "one"),
        (
            SIMPLE.replace(
                "method: SHELL\n  script:\n    - echo one", "method: TELEPORT\n  script:\n    - echo one"
            ),
            "TELEPORT",
        ),
        (SIMPLE + "  on_completed: one\n", "cycle"),
        ("job_type: x\ntasks: 5\n", "tasks"),
        ("- just\n- a list\n", "mapping"),
        (SIMPLE.replace("description:", "descriptoin:"), "descriptoin"),
        ("{{ if }}", "line"),
    ],
)
def test_invalid_uploads_are_400_naming_the_problem(api, text, needle):
    resp = upload(api, text)
    assert resp.status_code == 400, resp.content
    assert needle.lower() in resp.json()["error"].lower()
    assert JobDefinition.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"", "application/yaml"), (b"\xff\xfe\x00garbage", "application/yaml"), (b"{not json", "application/json"),
     (b"[1,2]", "application/json"), (b"x" * (1024 * 1024 + 10), "application/yaml")],
)  # fmt: skip
def test_garbage_bodies_are_400(api, body, content_type):
    resp = api.post("/api/jobs/definitions", data=body, content_type=content_type)
    assert resp.status_code == 400
    assert resp.json()["error"]


def test_disable_enable_and_concurrency(api):
    definition = upload(api, SIMPLE).json()
    url = f"/api/jobs/definitions/{definition['id']}"
    assert api.post(f"{url}/disable").json()["disabled"] is True
    assert api.get(url).json()["disabled"] is True
    assert api.post(f"{url}/enable").json()["disabled"] is False
    resp = api.put(f"{url}/concurrency", {"concurrency": 7}, format="json")
    assert resp.status_code == 200 and resp.json()["max_concurrency"] == 7
    assert api.put(f"{url}/concurrency", {"concurrency": "lots"}, format="json").status_code == 400
    # honour 1: the reference rewrites small values, we keep them
    assert api.put(f"{url}/concurrency", {"concurrency": 1}, format="json").json()["max_concurrency"] == 1
    stats = api.get(f"{url}/stats").json()
    assert stats["running"] == 0 and stats["max_concurrency"] == 1


def test_delete_hides_the_job_type(api):
    definition = upload(api, SIMPLE).json()
    assert api.delete(f"/api/jobs/definitions/{definition['id']}").status_code == 200
    assert api.get(f"/api/jobs/definitions/{definition['id']}").status_code == 404
    assert api.get("/api/jobs/definitions").json()["TotalRecords"] == 0


def test_configs_secret_values_encrypted_and_never_returned(api):
    definition = upload(api, SIMPLE).json()
    url = f"/api/jobs/definitions/{definition['id']}/configs"
    resp = api.post(url, {"name": "GithubToken", "value": "ghp_supersecret", "secret": True}, format="json")
    assert resp.status_code == 201, resp.content
    assert "ghp_supersecret" not in resp.content.decode()
    plain = api.post(url, {"name": "Branch", "value": "main"}, format="json").json()
    assert plain["value"] == "main"
    listing = api.get(url)
    assert "ghp_supersecret" not in listing.content.decode()
    row = JobConfig.objects.get(name="GithubToken")
    assert "ghp_supersecret" not in row.value
    assert row.plain_value() == "ghp_supersecret"
    # as in the reference, a POST of a name the job type has updates that config
    assert api.post(url, {"name": "Branch", "value": "x"}, format="json").status_code == 200
    # renaming onto another config's name is refused
    assert (
        api.put(f"{url}/{plain['id']}", {"name": "GithubToken", "value": "y"}, format="json").status_code
        == 400
    )
    config_url = f"{url}/{plain['id']}"
    assert api.put(config_url, {"name": "Branch", "value": "dev"}, format="json").json()["value"] == "dev"
    assert api.delete(config_url).status_code == 200
    assert api.get(config_url).status_code == 404


PLUGIN = """\
job_type: io.formicary.stock-plugin
description: a public plugin other organizations may fork
public_plugin: true
sem_version: 1.0-dev
tasks:
- task_type: quote
  method: SHELL
  script:
    - echo "quote for {{.Symbol}}"
"""


def test_plugins_are_listed_across_organizations(api, bob_api):
    assert upload(api, PLUGIN).status_code == 201
    upload(api, SIMPLE)
    records = bob_api.get("/api/jobs/plugins").json()["Records"]
    assert [r["job_type"] for r in records] == ["io.formicary.stock-plugin"]
    # a plugin is listed, but the owner's other definitions stay invisible
    assert bob_api.get("/api/jobs/definitions/simple").status_code == 404


def test_list_filters_and_pagination(api):
    for i in range(5):
        upload(api, SIMPLE.replace("job_type: simple", f"job_type: simple-{i}"))
    page = api.get("/api/jobs/definitions?pageSize=2&page=1").json()
    assert page["TotalRecords"] == 5 and page["TotalPages"] == 3 and len(page["Records"]) == 2
    assert api.get("/api/jobs/definitions?job_type=simple-3").json()["TotalRecords"] == 1
    assert api.get("/api/jobs/definitions?q=simple-4").json()["TotalRecords"] == 1
    assert api.get("/api/jobs/definitions?pageSize=abc").status_code == 400


def test_version_lookup_by_sem_version_shared_by_two_uploads(api):
    text = SIMPLE + "sem_version: 1.0\n"
    upload(api, text)
    second = upload(api, text.replace("echo two", "echo 2")).json()
    resp = api.get("/api/jobs/definitions/simple?version=1.0")
    assert resp.status_code == 200 and resp.json()["id"] == second["id"]
    assert api.get("/api/jobs/definitions/simple?version=9.9").status_code == 404


MANUAL_GATE = (
    "job_type: gate\ntasks:\n- task_type: approve\n  method: MANUAL\n  approval_policy:\n    {policy}\n"
)


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        ("min_approvals: 0", "approval_policy.min_approvals"),
        ("timeout_action: WAIT", "approval_policy.timeout_action"),
        ("sla_deadline: soon", "approval_policy.sla_deadline"),
        ("approvers: 2", "approval_policy.approvers"),
    ],
)
def test_a_bad_approval_policy_is_a_400_naming_the_task_and_field(api, policy, needle):
    resp = upload(api, MANUAL_GATE.format(policy=policy))
    assert resp.status_code == 400, resp.content
    assert needle in resp.json()["error"] and "approve" in resp.json()["error"]
    assert JobDefinition.objects.count() == 0


def test_a_valid_approval_policy_uploads_without_a_warning(api):
    resp = upload(api, MANUAL_GATE.format(policy="min_approvals: 2"))
    assert resp.status_code == 201, resp.content
    assert "approval_policy" not in json.dumps(resp.json().get("warnings", []))
