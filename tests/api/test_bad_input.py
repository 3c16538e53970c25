"""Bad input gets a 4xx naming the problem, never a 500 (issue 14, findings 5 and 8)."""

from typing import Any

import pytest
from django.test import Client

from ants.protocol import AntRegistration
from artifacts.models import Artifact
from jobs.models import JobDefinition, JobRequest
from jobs.queen.resources import ResourceManager
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: plain
tasks:
- task_type: only
  method: SHELL
  script: [echo hi]
"""

DEEP = "[" * 5000 + "]" * 5000


def deep_object(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def login(member: Any) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(member.user)
    return client


def error_of(resp: Any) -> str:
    return str(resp.json().get("error", ""))


# -- deeply nested JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [DEEP, deep_object(3000), deep_object(100)], ids=["arrays-5000", "objects-3000", "objects-100"]
)
def test_deep_json_is_a_400_on_every_json_endpoint(api, body):
    upload(api, DEFINITION)
    for url, method in [
        ("/api/jobs/requests", "post"),
        ("/api/jobs/requests/bulk", "post"),
        ("/api/jobs/definitions", "post"),
        ("/api/jobs/definitions/plain/configs", "post"),
        ("/api/jobs/definitions/plain/concurrency", "put"),
    ]:
        resp = getattr(api, method)(url, data=body, content_type="application/json")
        assert resp.status_code == 400, (url, resp.status_code)
        assert "nested deeper than 64 levels" in error_of(resp), (url, resp.content[:200])


def test_deep_params_in_a_request_are_a_400(api):
    upload(api, DEFINITION)
    body = '{"job_type": "plain", "params": {"X": ' + deep_object(200) + "}}"
    resp = api.post("/api/jobs/requests", data=body, content_type="application/json")
    assert resp.status_code == 400 and "nested deeper" in error_of(resp)


def test_json_constants_surrogates_and_nul_are_400s(api):
    upload(api, DEFINITION)
    for body, word in [
        ('{"job_type": "plain", "params": {"X": NaN}}', "NaN"),
        ('{"job_type": "plain", "params": {"X": Infinity}}', "Infinity"),
        ('{"job_type": "plain\\ud800"}', "surrogate"),
        ('{"job_type": "plain", "params": {"X\\u0000": "v"}}', "NUL"),
        ('{"job_type": "plain", "job_group": "a\\u0000b"}', "NUL"),
    ]:
        resp = api.post("/api/jobs/requests", data=body, content_type="application/json")
        assert resp.status_code == 400, (body, resp.status_code)
        assert word in error_of(resp), (body, error_of(resp))
    assert not JobRequest.objects.exists()


def test_lone_surrogate_in_a_yaml_definition_is_a_400(api):
    text = DEFINITION.replace("job_type: plain", 'job_type: plain\ndescription: "x\\ud800"')
    resp = upload(api, text)
    assert resp.status_code == 400 and "surrogate" in error_of(resp)


def test_nul_in_a_query_parameter_is_a_400_naming_it(api):
    resp = api.get("/api/jobs/requests", {"job_type": "a\x00b"})
    assert resp.status_code == 400 and "job_type" in error_of(resp) and "NUL" in error_of(resp)


def test_ui_extra_params_deeply_nested_is_a_form_error(alice):
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    resp = login(alice).post(f"/jobs/definitions/{definition.pk}/submit", {"extra_params": DEEP})
    assert resp.status_code == 400 and b"nested deeper than 64 levels" in resp.content
    assert not JobRequest.objects.exists()


# -- query parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/jobs/requests", "/api/jobs/requests/stats"])
@pytest.mark.parametrize(
    "value", ["2026-13-45", "2026-13-45T00:00:00", "2026-02-30T10:00:00", "0001-01-01T00:00:00+14:00"]
)
def test_impossible_dates_are_a_400_naming_the_parameter(api, url, value):
    resp = api.get(url, {"from": value})
    assert resp.status_code == 400, resp.content
    assert error_of(resp).startswith("from: "), error_of(resp)


@pytest.mark.parametrize("value", ["inf", "1e300", "-1"])
def test_expires_after_out_of_range_is_a_400(api, value):
    resp = api.post(f"/api/artifacts?name=a.txt&expires_after={value}", data=b"x", content_type="text/plain")
    assert resp.status_code == 400, resp.content
    assert error_of(resp).startswith("expires_after: ")
    assert not Artifact.objects.exists()


def test_expires_after_of_a_century_is_kept(api):
    resp = api.post(
        "/api/artifacts?name=a.txt&expires_after=3000000000", data=b"x", content_type="text/plain"
    )
    assert resp.status_code == 201, resp.content


def test_artifact_name_part_over_255_bytes_is_a_400(api):
    for name in ["a" * 256, "dir/" + "é" * 128 + ".txt"]:
        resp = api.post(f"/api/artifacts?name={name}", data=b"x", content_type="text/plain")
        assert resp.status_code == 400, resp.content
        assert "at most 255" in error_of(resp)
    assert (
        api.post(f"/api/artifacts?name=d/{'a' * 255}", data=b"x", content_type="text/plain").status_code
        == 201
    )


@pytest.mark.parametrize("value", ["²", "١٢"])
def test_digits_that_are_not_ascii_are_not_ids(api, value):
    assert api.get("/api/artifacts", {"job_request_id": value}).status_code == 400
    assert api.get(f"/api/jobs/definitions/{value}").status_code == 404
    assert api.get(f"/api/ants/{value}").status_code == 404
    assert (
        api.post("/api/jobs/requests", {"job_type": "plain", "job_version": value}, format="json").status_code
        == 400
    )


# -- headers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [" ", "\t", "   \t "])
def test_authorization_of_only_whitespace_is_a_401(anon_api, header):
    resp = anon_api.get("/api/jobs/requests", HTTP_AUTHORIZATION=header)
    assert resp.status_code == 401 and "Authorization header is empty" in error_of(resp)


# -- the UI's priority --------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [str(2**63), str(-(2**63) - 1), "5000", "1001"])
def test_ui_priority_out_of_the_api_range_is_a_form_error(alice, priority):
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    resp = login(alice).post(f"/jobs/definitions/{definition.pk}/submit", {"job_priority": priority})
    assert resp.status_code == 400 and b"Ensure this value is" in resp.content
    assert not JobRequest.objects.exists()


def test_ui_priority_at_the_api_bound_is_accepted(alice):
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    resp = login(alice).post(f"/jobs/definitions/{definition.pk}/submit", {"job_priority": "1000"})
    assert resp.status_code == 302
    assert JobRequest.objects.get().job_priority == 1000


# -- finding 8: concurrency 0, numeric-looking job types, wait_time, the UI's ants ------------------


def test_concurrency_zero_is_accepted_and_a_missing_value_names_the_range(api):
    upload(api, DEFINITION)
    resp = api.put("/api/jobs/definitions/plain/concurrency", {"concurrency": 0}, format="json")
    assert resp.status_code == 200 and resp.json()["max_concurrency"] == 0
    resp = api.put("/api/jobs/definitions/plain/concurrency", {"max_concurrency": 0}, format="json")
    assert resp.status_code == 200
    resp = api.put("/api/jobs/definitions/plain/concurrency", {}, format="json")
    assert resp.status_code == 400 and "from 0 to 100000" in error_of(resp)


def test_a_definition_key_of_digits_with_a_leading_zero_is_a_job_type(api):
    first = upload(api, DEFINITION).json()
    assert first["id"] == int(str(first["id"]))
    numeric = upload(api, DEFINITION.replace("job_type: plain", 'job_type: "00001"')).json()
    for key in ["00001", "0" * (5 - len(str(first["id"]))) + str(first["id"])]:
        resp = api.get(f"/api/jobs/definitions/{key}")
        if key == "00001":
            assert resp.status_code == 200 and resp.json()["job_type"] == "00001"
        else:
            assert resp.status_code == 404 or resp.json()["job_type"] == key
    assert api.get(f"/api/jobs/definitions/{first['id']}").json()["job_type"] == "plain"
    assert api.get(f"/api/jobs/definitions/{numeric['id']}").json()["job_type"] == "00001"


def test_a_job_type_of_digits_wins_over_the_id_it_looks_like(api):
    first = upload(api, DEFINITION).json()
    lookalike = str(first["id"])
    upload(api, DEFINITION.replace("job_type: plain", f'job_type: "{lookalike}"'))
    assert api.get(f"/api/jobs/definitions/{lookalike}").json()["job_type"] == lookalike
    assert api.get("/api/jobs/definitions/plain").json()["id"] == first["id"]


def test_wait_time_queue_number_counts_only_the_callers_requests(alice, bob, api):
    for member in (alice, bob):
        definition_upload(org_id=member.org_id, user=member.user, text=DEFINITION)
    for _ in range(3):
        request_submit(org_id=bob.org_id, user=bob.user, job_type="plain", params={}, job_priority=5)
    request_submit(org_id=alice.org_id, user=alice.user, job_type="plain", params={}, job_priority=9)
    mine = request_submit(org_id=alice.org_id, user=alice.user, job_type="plain", params={})
    body = api.get(f"/api/jobs/requests/{mine.pk}/wait_time").json()
    assert body["queue_number"] == 1


def test_ui_ants_page_and_dashboard_hide_other_organizations_dedicated_ants(alice, bob):
    rm = ResourceManager()
    rm.heard(AntRegistration(ant_id="shared-ant", methods=["SHELL"], tags=["linux"]))
    rm.heard(
        AntRegistration(
            ant_id="ws-globex-ant", methods=["WEBSOCKET"], tags=["globex-secret-tag"],
            organization_id=str(bob.org_id),
        )
    )  # fmt: skip
    rm.heard(AntRegistration(ant_id="ws-acme-ant", methods=["WEBSOCKET"], organization_id=str(alice.org_id)))
    rm.persist()
    for url in ["/ants", "/"]:
        page = login(alice).get(url).content.decode()
        assert "shared-ant" in page and "ws-acme-ant" in page, url
        assert "ws-globex-ant" not in page and "globex-secret-tag" not in page, url
    assert "ws-globex-ant" in login(bob).get("/ants").content.decode()
    assert JobDefinition.objects.count() == 0
