"""Error-code rules API (/api/errors): list shape, create/update/delete, YAML and the reference's
spellings, validation, and tenancy (own + global rows; global ones only for superusers)."""

import pytest

from jobs.models import ErrorCode

pytestmark = pytest.mark.django_db

RULE = {"error_code": "ERR_GIT_AUTH", "regex": "could not read Username", "job_type": "build",
        "action": "RETRY_TASK", "retry": 2, "display_message": "Check the token"}  # fmt: skip


def test_create_get_list_update_delete(api, alice):
    created = api.post("/api/errors", RULE, format="json")
    assert created.status_code == 201, created.content
    row = created.json()
    assert row["error_code"] == "ERR_GIT_AUTH" and row["organization_id"] == alice.org_id
    assert row["is_global"] is False and row["action"] == "RETRY_TASK" and row["retry"] == 2
    got = api.get(f"/api/errors/{row['id']}")
    assert got.status_code == 200 and got.json()["regex"] == "could not read Username"
    listing = api.get("/api/errors").json()
    assert set(listing) == {"Records", "TotalRecords", "Page", "PageSize", "TotalPages"}
    assert [r["id"] for r in listing["Records"]] == [row["id"]]
    assert api.get("/api/errors?job_type=deploy").json()["TotalRecords"] == 0
    assert api.get("/api/errors?q=token").json()["TotalRecords"] == 1
    put = api.put(f"/api/errors/{row['id']}", {"retry": 3}, format="json")
    assert put.status_code == 200 and put.json()["retry"] == 3 and put.json()["error_code"] == "ERR_GIT_AUTH"
    # the reference's PUT /api/errors with the id in the body
    put = api.put("/api/errors", {"id": row["id"], "error_code": "ERR_AUTH"}, format="json")
    assert put.status_code == 200 and put.json()["error_code"] == "ERR_AUTH"
    assert api.delete(f"/api/errors/{row['id']}").status_code == 200
    assert api.get(f"/api/errors/{row['id']}").status_code == 404


def test_reference_spelling_and_yaml_body(api):
    capital = api.post(
        "/api/errors", {"ErrorCode": "ERR_OOM", "Regex": "Killed", "HardFailure": True}, format="json"
    )
    assert capital.status_code == 201, capital.content
    assert capital.json()["hard_failure"] is True and capital.json()["regex"] == "Killed"
    yaml_body = b"error_code: ERR_DISK\nregex: 'No space left'\naction: retry_job\nretry: 1\n"
    for content_type in ("application/yaml", "text/yaml", "application/x-yaml"):
        resp = api.post("/api/errors", data=yaml_body, content_type=content_type)
        assert resp.status_code == 201, resp.content
        assert resp.json()["action"] == "RETRY_JOB"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"regex": "x"}, "error_code"),
        ({"error_code": "E"}, "regex or exit_code"),
        ({"error_code": "E", "regex": "("}, "regex"),
        ({"error_code": "E", "regex": "x", "action": "EXPLODE"}, "action"),
        ({"error_code": "E", "regex": "x", "retry": -1}, "retry"),
    ],
)
def test_bad_rules_are_400_naming_the_field(api, body, named):
    resp = api.post("/api/errors", body, format="json")
    assert resp.status_code == 400, resp.content
    assert named in resp.json()["error"]


def test_bad_bodies_are_400(api):
    assert api.post("/api/errors", data=b"{not json", content_type="application/json").status_code == 400
    assert api.post("/api/errors", data=b"- a\n- b\n", content_type="application/yaml").status_code == 400
    assert api.put("/api/errors", {"error_code": "E"}, format="json").status_code == 400


def test_tenancy_own_and_global_rows(api, bob_api, alice, bob):
    own = api.post("/api/errors", RULE, format="json").json()
    global_row = ErrorCode.objects.create(error_code="ERR_GLOBAL", regex="boom")
    # bob sees the global row, not alice's; alice's row is a 404 for him, read or write
    bob_ids = [r["id"] for r in bob_api.get("/api/errors").json()["Records"]]
    assert bob_ids == [global_row.pk]
    assert bob_api.get(f"/api/errors/{own['id']}").status_code == 404
    assert bob_api.put(f"/api/errors/{own['id']}", {"retry": 0}, format="json").status_code == 404
    assert bob_api.delete(f"/api/errors/{own['id']}").status_code == 404
    assert ErrorCode.objects.filter(pk=own["id"]).exists()
    # a member may read a global row but not change it, nor create one
    assert api.get(f"/api/errors/{global_row.pk}").json()["is_global"] is True
    assert api.put(f"/api/errors/{global_row.pk}", {"retry": 1}, format="json").status_code == 403
    assert api.delete(f"/api/errors/{global_row.pk}").status_code == 403
    assert api.post("/api/errors", {**RULE, "is_global": True}, format="json").status_code == 403
    # a superuser may
    bob.user.is_superuser = True
    bob.user.save()
    assert bob_api.put(f"/api/errors/{global_row.pk}", {"retry": 1}, format="json").status_code == 200
    made = bob_api.post("/api/errors", {**RULE, "is_global": True}, format="json")
    assert made.status_code == 201 and made.json()["organization_id"] is None
    assert bob_api.delete(f"/api/errors/{global_row.pk}").status_code == 200


def test_schema_lists_the_errors_api(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert set(paths["/api/errors"]) >= {"get", "post", "put"}
    assert set(paths["/api/errors/{id}"]) >= {"get", "put", "delete"}
