"""Plans' limits through the REST API (no ants needed): artifact uploads over the storage
quota, the queen's start step holding requests over the organization's concurrency or a full
store, and the usage report's window and tenancy. Runs with real ants: test_quotas_runs.py."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ants.messaging import InProcessTransport
from ants.protocol import AntRegistration
from artifacts.models import Artifact
from jobs.models import JobRequest
from jobs.queen.engine import Engine
from jobs.queen.resources import ResourceManager
from orgs.models import User
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = "job_type: quota-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: ['true']\n"


def plan(api, **limits) -> dict:  # type: ignore[no-untyped-def]
    created = api.post("/api/subscriptions", {"policy": "BASIC", **limits}, format="json")
    assert created.status_code == 201, created.content
    return created.json()


def raw_upload(api, name: str, size: int):  # type: ignore[no-untyped-def]
    return api.generic("POST", f"/api/artifacts?name={name}", b"x" * size, content_type="text/plain")


def test_uploads_over_the_storage_quota_are_refused_naming_the_limit(alice, api, bob_api):
    plan(api, disk_quota=100)
    assert raw_upload(api, "a.txt", 60).status_code == 201
    refused = raw_upload(api, "b.txt", 60)
    assert refused.status_code == 413, refused.content
    body = refused.json()
    assert body["limit"] == "disk_quota"
    assert body["error"] == ("storage quota exceeded: this organization stores 60 bytes of artifacts plus 60 bytes "
                             "uploaded, the BASIC plan's disk_quota is 100 bytes")  # fmt: skip
    multipart = api.post(
        "/api/artifacts", {"file": SimpleUploadedFile("c.txt", b"y" * 41, "text/plain")}, format="multipart"
    )
    assert multipart.status_code == 413 and "disk_quota is 100 bytes" in multipart.json()["error"]
    assert raw_upload(api, "d.txt", 40).status_code == 201  # exactly the quota
    assert sorted(Artifact.objects.filter(organization_id=alice.org_id).values_list("name", flat=True)) == [
        "a.txt", "d.txt",
    ]  # fmt: skip
    assert raw_upload(bob_api, "e.txt", 500).status_code == 201  # another organization's plan


def _engine() -> Engine:
    resources = ResourceManager()
    resources.heard(AntRegistration(ant_id="ant-q", max_capacity=10, methods=["SHELL"]))
    return Engine(InProcessTransport(), resources)


def _submit(api, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    created = api.post(
        "/api/jobs/requests/bulk", {"requests": [{"job_type": "quota-job"}] * n}, format="json"
    )
    assert created.status_code == 201, created.content
    return [r["id"] for r in created.json()]


def test_the_start_step_holds_requests_over_the_organizations_concurrency(alice, api, bob_api):
    for client in (api, bob_api):
        upload(client, DEFINITION)
    assert api.put(f"/api/orgs/{alice.org_id}", {"max_concurrency": 2}, format="json").status_code == 200
    ids = _submit(api, 4)
    others = _submit(bob_api, 3)
    assert _engine().schedule() == 5  # two of acme's, bob's three (no limit)
    states = dict(JobRequest.objects.filter(pk__in=ids).values_list("pk", "job_state"))
    # started: READY, or EXECUTING when its first task went to an ant with room at once
    assert [states[i] != "PENDING" for i in ids] == [True, True, False, False]
    waiting = api.get(f"/api/jobs/requests/{ids[2]}").json()
    assert (
        waiting["state_message"]
        == "waiting: 2 of 2 concurrent jobs are running (organization acme's max_concurrency)"
    )
    assert "PENDING" not in set(JobRequest.objects.filter(pk__in=others).values_list("job_state", flat=True))
    # the plan's tighter limit wins, and names itself
    plan(api, max_concurrency=1)
    JobRequest.objects.filter(pk__in=ids).update(not_before=None)
    assert _engine().schedule() == 0
    assert JobRequest.objects.get(pk=ids[3]).state_message == (
        "waiting: 2 of 1 concurrent jobs are running (the BASIC plan's max_concurrency)"
    )


def test_the_start_step_holds_requests_while_the_store_is_full(alice, api):
    upload(api, DEFINITION)
    assert raw_upload(api, "big.txt", 50).status_code == 201
    plan(api, disk_quota=50)
    (request_id,) = _submit(api, 1)
    assert _engine().schedule() == 0
    held = JobRequest.objects.get(pk=request_id)
    assert held.job_state == "PENDING"
    assert (
        held.state_message
        == "waiting: artifact storage is full: 50 of the BASIC plan's disk_quota 50 bytes are used"
    )
    assert api.delete(f"/api/artifacts/{Artifact.objects.get(name='big.txt').pk}").status_code in (200, 204)
    JobRequest.objects.filter(pk=request_id).update(not_before=None)
    assert _engine().schedule() == 1


def test_usage_report_window_is_checked_and_names_the_bad_field(api):
    for method, kwargs, field in [
        ("get", {"path": "/api/orgs/usage_report?from=yesterday"}, "from"),
        ("get", {"path": "/api/orgs/usage_report?to=2026-13-45"}, "to"),
        ("post", {"path": "/api/orgs/usage_report", "data": {"from": 12}, "format": "json"}, "from"),
        ("post", {"path": "/api/orgs/usage_report", "data": {"from": "2026-02-01", "to": "2026-01-01"},
                  "format": "json"}, "to"),
    ]:  # fmt: skip
        answer = getattr(api, method)(**kwargs)
        assert answer.status_code == 400, (kwargs, answer.content)
        assert answer.json()["error"].startswith(f"{field}: "), answer.json()


def test_usage_report_is_the_callers_organization_and_every_one_for_a_superuser(alice, api, bob_api, bob):
    raw_upload(api, "a.txt", 7)
    raw_upload(bob_api, "b.txt", 9)
    mine = api.post(
        "/api/orgs/usage_report", {"from": "2020-01-01", "to": "2099-01-01"}, format="json"
    ).json()
    assert [(o["organization"], o["storage_bytes"]) for o in mine["organizations"]] == [("acme", 7)]
    assert mine["organizations"][0]["job_types"] == [
        {"job_type": "", "jobs": 0, "tasks": 0, "cpu_secs": 0.0, "cost": 0.0, "storage_bytes": 7}
    ]
    assert mine["from"].startswith("2020-01-01T00:00:00") and mine["to"].startswith("2099-01-02T00:00:00")
    theirs = bob_api.get("/api/orgs/usage_report").json()
    assert [(o["organization"], o["storage_bytes"]) for o in theirs["organizations"]] == [("globex", 9)]
    root = User.objects.create_superuser(username="root", password="pw-root-123")
    su = APIClient()
    su.force_authenticate(root)
    every = su.get("/api/orgs/usage_report").json()
    assert {(o["organization"], o["storage_bytes"]) for o in every["organizations"]} == {
        ("acme", 7),
        ("globex", 9),
    }
