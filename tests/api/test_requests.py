"""Job requests API: submission checks, reading with execution and tasks, lists, control, tenancy."""

import pytest

from jobs.domain import finished_counts
from jobs.models import JobRequest, JobRequestParam
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: with-params
required_params: [Branch]
tasks:
- task_type: build
  method: SHELL
  script: ["echo {{.Branch}}"]
"""


@pytest.fixture
def job(api):  # type: ignore[no-untyped-def]
    resp = upload(api, DEFINITION)
    assert resp.status_code == 201
    return resp.json()


def post(client, body):  # type: ignore[no-untyped-def]
    return client.post("/api/jobs/requests", body, format="json")


def test_submit_returns_pending_request(api, job):
    resp = post(api, {"job_type": "with-params", "params": {"Branch": "main", "Count": 3, "Fast": True},
                      "job_priority": 5, "job_group": "g", "user_key": "k"})  # fmt: skip
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["job_state"] == "PENDING" and body["job_type"] == "with-params" and body["job_priority"] == 5
    assert body["params"] == {"Branch": "main", "Count": "3", "Fast": "true"}
    detail = api.get(f"/api/jobs/requests/{body['id']}").json()
    assert detail["execution"] is None and detail["user_key"] == "k"


def test_reference_style_params_list_and_secret_params(api, job):
    resp = post(api, {"job_type": "with-params", "params": [{"name": "Branch", "value": "dev"},
                                                             {"name": "Key", "value": "s3cr3t", "secret": True}]})  # fmt: skip
    assert resp.status_code == 201
    assert resp.json()["params"] == {"Branch": "dev", "Key": "****"}
    row = JobRequestParam.objects.get(name="Key")
    assert "s3cr3t" not in row.value and row.plain_value() == "s3cr3t"
    assert "s3cr3t" not in api.get(f"/api/jobs/requests/{resp.json()['id']}").content.decode()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"job_type": "with-params"}, "Branch"),
        ({"job_type": "with-params", "params": {"Branch": ""}}, "Branch"),
        ({"job_type": "nope", "params": {"Branch": "x"}}, "unknown job type 'nope'"),
        ({"job_type": "with-params", "job_version": "9", "params": {"Branch": "x"}}, "version"),
        ({"params": {"Branch": "x"}}, "job_type"),
        ({"job_type": "with-params", "params": "Branch=x"}, "params"),
        ({"job_type": "with-params", "params": {"Branch": {"nested": 1}}}, "params.Branch"),
        ({"job_type": "with-params", "params": {"Branch": "x"}, "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"job_type": "with-params", "params": {"Branch": "x"}, "job_priority": "high"}, "job_priority"),
    ],
)
def test_bad_submissions_are_400_naming_the_problem(api, job, body, needle):
    resp = post(api, body)
    assert resp.status_code == 400, resp.content
    assert needle in resp.json()["error"]
    assert JobRequest.objects.count() == 0


def test_bulk_submit_creates_all_with_params(api, job):  # type: ignore[no-untyped-def]
    body = {"requests": [{"job_type": "with-params", "params": {"Branch": f"b{i}"}, "user_key": f"k{i}"}
                         for i in range(3)]}  # fmt: skip
    body["requests"].append({"job_type": "with-params", "params": [{"name": "Branch", "value": "x"},
                                                                  {"name": "Key", "value": "s3cr3t", "secret": True}]})  # fmt: skip
    resp = api.post("/api/jobs/requests/bulk", body, format="json")
    assert resp.status_code == 201, resp.content
    rows = resp.json()
    assert [r["user_key"] for r in rows] == ["k0", "k1", "k2", ""]
    assert [r["params"] for r in rows] == [{"Branch": "b0"}, {"Branch": "b1"}, {"Branch": "b2"},
                                           {"Branch": "x", "Key": "****"}]  # fmt: skip
    assert {r["job_state"] for r in rows} == {"PENDING"}
    assert "s3cr3t" not in resp.content.decode()
    assert JobRequestParam.objects.get(name="Key").plain_value() == "s3cr3t"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"requests": [{"job_type": "with-params", "params": {"Branch": "x"}}, {"params": {}}]},
         "requests[1]: job_type: This field is required"),
        ({"requests": [{"job_type": "with-params", "params": {"Branch": "x"}}, {"job_type": "with-params"}]},
         "requests[1].params: missing required params Branch"),
        ({"requests": [{"job_type": "with-params", "params": {"Branch": "x"}, "job_priority": "high"}]},
         "requests[0]: job_priority: A valid integer is required"),
        ({"requests": ["with-params"]}, "requests[0]: Invalid data. Expected a dictionary"),
        ({"requests": []}, "at least one request"),
        ({"requests": "with-params"}, "requests: must be a list"),
        ([{"job_type": "with-params"}], "requests: must be a list"),
        ({"requests": [{"job_type": "with-params", "params": {"Branch": "x"}}] * 1001}, "at most 1000"),
    ],
)  # fmt: skip
def test_bad_bulk_submissions_are_400_naming_the_request_and_store_nothing(api, job, body, needle):  # type: ignore[no-untyped-def]
    resp = api.post("/api/jobs/requests/bulk", body, format="json")
    assert resp.status_code == 400, resp.content
    assert needle in resp.json()["error"], resp.json()
    assert not JobRequest.objects.exists()


def test_disabled_job_type_is_refused(api, job):
    api.post(f"/api/jobs/definitions/{job['id']}/disable")
    resp = post(api, {"job_type": "with-params", "params": {"Branch": "x"}})
    assert resp.status_code == 400 and "disabled" in resp.json()["error"]


def test_garbage_json_is_400(api, job):
    resp = api.post("/api/jobs/requests", data=b"{nope", content_type="application/json")
    assert resp.status_code == 400 and resp.json()["error"]


def test_list_filters_pagination_and_stats(api, job):
    for i in range(5):
        post(
            api,
            {
                "job_type": "with-params",
                "params": {"Branch": str(i)},
                "job_group": "even" if i % 2 else "odd",
            },
        )
    JobRequest.objects.filter(pk=JobRequest.objects.order_by("id").first().pk).update(job_state="FAILED")
    finished_counts.rebuild()  # a state written around transitions: counted again
    page = api.get("/api/jobs/requests?pageSize=2").json()
    assert page["TotalRecords"] == 5 and len(page["Records"]) == 2 and page["TotalPages"] == 3
    assert api.get("/api/jobs/requests?job_state=FAILED").json()["TotalRecords"] == 1
    assert api.get("/api/jobs/requests?job_state=PENDING,FAILED").json()["TotalRecords"] == 5
    assert api.get("/api/jobs/requests?job_group=even").json()["TotalRecords"] == 2
    assert api.get("/api/jobs/requests?job_type=other").json()["TotalRecords"] == 0
    assert api.get("/api/jobs/requests?job_state=SLEEPING").status_code == 400
    assert api.get("/api/jobs/requests?from=yesterday").status_code == 400
    assert api.get("/api/jobs/requests?from=2000-01-01T00:00:00Z").json()["TotalRecords"] == 5
    stats = api.get("/api/jobs/requests/stats").json()
    # each row keeps its fields and gains its job type's report numbers (docs/notifications.md)
    assert {"job_type": "with-params", "job_state": "PENDING", "counts": 4, "success_rate": 0.0,
            "p50_secs": None, "p95_secs": None} in stats  # fmt: skip
    assert api.get("/api/jobs/requests/dead_ids").json() == [JobRequest.objects.order_by("id").first().pk]


def test_wait_time_and_dot(api, job):
    first = post(api, {"job_type": "with-params", "params": {"Branch": "a"}}).json()
    second = post(api, {"job_type": "with-params", "params": {"Branch": "b"}}).json()
    wait = api.get(f"/api/jobs/requests/{second['id']}/wait_time").json()
    assert wait["queue_number"] == 1 and wait["job_state"] == "PENDING"
    dot = api.get(f"/api/jobs/requests/{first['id']}/dot")
    assert dot.status_code == 200 and '"build"' in dot.content.decode()
    png = api.get(f"/api/jobs/requests/{first['id']}/dot.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_cancel_pending_then_cancel_again_is_400(api, job):
    body = post(api, {"job_type": "with-params", "params": {"Branch": "a"}}).json()
    assert api.post(f"/api/jobs/requests/{body['id']}/cancel").json()["job_state"] == "CANCELLED"
    again = api.post(f"/api/jobs/requests/{body['id']}/cancel")
    assert again.status_code == 400 and "CANCELLED" in again.json()["error"]


def test_request_endpoints_are_404_for_another_organization(api, bob_api, job):
    rid = post(api, {"job_type": "with-params", "params": {"Branch": "secret-branch"}}).json()["id"]
    for method, url in [
        ("get", f"/api/jobs/requests/{rid}"), ("get", f"/api/jobs/requests/{rid}/wait_time"),
        ("get", f"/api/jobs/requests/{rid}/dot"), ("get", f"/api/jobs/requests/{rid}/dot.png"),
        ("get", f"/api/jobs/requests/{rid}/logs"), ("post", f"/api/jobs/requests/{rid}/cancel"),
        ("post", f"/api/jobs/requests/{rid}/pause"), ("post", f"/api/jobs/requests/{rid}/resume"),
        ("post", f"/api/jobs/requests/{rid}/restart"), ("post", f"/api/jobs/requests/{rid}/trigger"),
    ]:  # fmt: skip
        resp = getattr(bob_api, method)(url)
        assert resp.status_code == 404, (url, resp.status_code)
        assert "secret-branch" not in resp.content.decode()
    assert JobRequest.objects.get(pk=rid).job_state == "PENDING"
    assert bob_api.get("/api/jobs/requests").json()["TotalRecords"] == 0
    assert bob_api.get("/api/jobs/requests/stats").json() == []
    # bob cannot submit acme's (non-plugin) job type either
    assert post(bob_api, {"job_type": "with-params", "params": {"Branch": "x"}}).status_code == 400
    many = {"requests": [{"job_type": "with-params", "params": {"Branch": "x"}}]}
    assert bob_api.post("/api/jobs/requests/bulk", many, format="json").status_code == 400
    assert JobRequest.objects.count() == 1


def test_schema_and_swagger_ui(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in (
        "/api/jobs/definitions",
        "/api/jobs/requests/{id}/cancel",
        "/api/jobs/requests/{id}/restart",
        "/api/jobs/requests/bulk",
        "bearer",
    ):
        assert path in text
    ui = api.get("/api/docs/")
    assert ui.status_code == 200 and b"swagger" in ui.content.lower()


def test_a_request_says_what_triggered_it(api, job, alice, client):  # type: ignore[no-untyped-def]
    """Submitted with an API token, a request names the token (the list shows "alice (token
    default)"); from a person's session it names nobody else; a trigger names itself."""
    from jobs.definition.triggers import Decision, TriggerSpec
    from jobs.models import JobRequest
    from jobs.triggers.services import fire, state_for

    body = {"job_type": "with-params", "params": {"Branch": "main"}}
    by_token = post(api, body).json()
    assert by_token["triggered_by"] == "token default"
    many = api.post("/api/jobs/requests/bulk", {"requests": [body]}, format="json").json()
    assert many[0]["triggered_by"] == "token default"
    state = state_for(org_id=alice.org_id, job_type="with-params", name="deploy-hook", kind="webhook")
    fired = fire(state=state, trigger=TriggerSpec(name="deploy-hook", type="webhook"),
                 decision=Decision(True, params={"Branch": "main"}))  # fmt: skip
    assert JobRequest.objects.get(pk=fired.request_id).triggered_by == "webhook trigger deploy-hook"
    client.force_login(alice.user)
    page = client.get("/jobs/requests").content.decode()
    assert "alice (token default)" in page and "webhook trigger deploy-hook" in page
