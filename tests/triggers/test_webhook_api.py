"""Webhook triggers through the REST API: signed, unsigned and wrong calls, filter, params,
dedup, rate limit, the 1 MiB limit, two organizations with the same trigger, state and reset."""

import json

import pytest

from jobs.models import JobRequest, JobRequestParam
from tests.triggers.conftest import SECRET, define, sign

pytestmark = pytest.mark.django_db

HOOK = """\
job_type: hooked
triggers:
- name: push
  type: webhook
  auth: {method: hmac_sha256, secret_config: HookSecret}
  filter: '{{`{{ eq .Body.action "opened" }}`}}'
  params:
    Number: '{{`{{ .Body.number }}`}}'
    Source: '{{`{{ .Query.source }}`}}'
    Agent: '{{`{{ index .Headers "X-Agent" }}`}}'
  dedup_key: '{{`pr-{{ .Body.number }}`}}'
  rate_limit: {max: 3, window: 1h}
- name: token
  type: webhook
  auth: {method: bearer_token, secret_config: HookSecret}
- name: key
  type: webhook
  auth: {method: api_key_header, secret_config: HookSecret, header: X-Key}
tasks:
- task_type: t
  method: SHELL
  script: [true]
"""
URL = "/api/triggers/hooked/push"


def post(client, body: dict | bytes, *, signature: str | None = "auto", url: str = URL, **headers):  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if signature == "auto":
        signature = sign(raw)
    if signature is not None:
        headers["HTTP_X_SIGNATURE_256"] = signature
    return client.post(url, data=raw, content_type="application/json", **headers)


def test_signed_call_starts_one_request_with_the_rendered_params(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    resp = post(anon_api, {"action": "opened", "number": 7}, url=URL + "?source=ci", HTTP_X_AGENT="curl")
    assert resp.status_code == 201, resp.content
    request = JobRequest.objects.get(pk=resp.json()["request_id"])
    assert (request.job_type, request.user_key) == ("hooked", "pr-7")
    params = {p.name: p.plain_value() for p in JobRequestParam.objects.filter(job_request=request)}
    assert params == {"Number": "7", "Source": "ci", "Agent": "curl"}


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, sign(b"other body")])
def test_unsigned_or_wrongly_signed_call_is_401_and_creates_nothing(api, anon_api, signature):
    define(api, HOOK, {"HookSecret": SECRET})
    resp = post(anon_api, {"action": "opened", "number": 1}, signature=signature)
    assert resp.status_code == 401, resp.content
    assert JobRequest.objects.count() == 0


def test_a_missing_secret_config_refuses_every_call(api, anon_api):
    define(api, HOOK)  # no HookSecret config: nothing can verify
    assert post(anon_api, {"action": "opened", "number": 1}, signature=sign(b"x", "")).status_code == 401
    assert JobRequest.objects.count() == 0


def test_bearer_token_and_api_key_header(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    url = "/api/triggers/hooked/token"
    assert anon_api.post(url, data=b"{}", content_type="application/json").status_code == 401
    ok = anon_api.post(
        url, data=b"{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {SECRET}"
    )
    assert ok.status_code == 201, ok.content
    key_url = "/api/triggers/hooked/key"
    assert (
        anon_api.post(key_url, data=b"{}", content_type="application/json", HTTP_X_KEY="nope").status_code
        == 401
    )
    assert (
        anon_api.post(key_url, data=b"{}", content_type="application/json", HTTP_X_KEY=SECRET).status_code
        == 201
    )
    assert JobRequest.objects.count() == 2


def test_filter_answers_202_filtered_and_records_why(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    resp = post(anon_api, {"action": "closed", "number": 2})
    assert resp.status_code == 202 and resp.json()["filtered"] is True
    assert JobRequest.objects.count() == 0
    state = api.get("/api/jobs/definitions/hooked/triggers/push/state").json()
    assert state["firings"][0]["outcome"] == "filtered"
    assert "filter rendered 'false'" in state["firings"][0]["reason"]


def test_duplicate_dedup_key_is_dropped_and_answered_as_such(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    first = post(anon_api, {"action": "opened", "number": 9})
    again = post(anon_api, {"action": "opened", "number": 9})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "request_id": first.json()["request_id"]}
    assert JobRequest.objects.count() == 1


def test_rate_limit_over_the_window_is_202_filtered_until_reset(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    codes = [post(anon_api, {"action": "opened", "number": n}).status_code for n in range(5)]
    assert codes == [201, 201, 201, 202, 202]
    assert JobRequest.objects.count() == 3
    state = api.get("/api/jobs/definitions/hooked/triggers/push/state").json()
    assert state["window_count"] == 3
    assert [f["outcome"] for f in state["firings"][:2]] == ["rate_limited", "rate_limited"]
    reset = api.post("/api/jobs/definitions/hooked/triggers/push/reset")
    assert reset.status_code == 200 and reset.json()["window_count"] == 0
    assert post(anon_api, {"action": "opened", "number": 99}).status_code == 201


def test_body_over_one_mib_is_413(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    big = b'{"action": "opened", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert post(anon_api, big).status_code == 413
    assert JobRequest.objects.count() == 0


def test_unknown_trigger_is_404(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    assert post(anon_api, {}, url="/api/triggers/hooked/nope").status_code == 404
    assert post(anon_api, {}, url="/api/triggers/nope/push").status_code == 404


def test_two_organizations_with_the_same_trigger_do_not_collide(api, bob_api, anon_api, alice, bob):
    define(api, HOOK, {"HookSecret": SECRET})
    define(bob_api, HOOK, {"HookSecret": "bobs-own-secret-value"})
    resp = post(anon_api, {"action": "opened", "number": 1}, signature=sign(b'{"action": "opened", "number": 1}',
                                                                           "bobs-own-secret-value"))  # fmt: skip
    assert resp.status_code == 201, resp.content
    assert JobRequest.objects.get(pk=resp.json()["request_id"]).organization_id == bob.org_id
    resp = post(anon_api, {"action": "opened", "number": 1})
    assert JobRequest.objects.get(pk=resp.json()["request_id"]).organization_id == alice.org_id
    # the state API shows each organization only its own firings
    assert len(bob_api.get("/api/jobs/definitions/hooked/triggers/push/state").json()["firings"]) == 1


def test_state_api_lists_triggers_and_needs_a_member(api, anon_api):
    define(api, HOOK, {"HookSecret": SECRET})
    listing = api.get("/api/jobs/definitions/hooked/triggers").json()
    assert [(t["name"], t["type"], t["url"]) for t in listing] == [
        ("push", "webhook", "/api/triggers/hooked/push"),
        ("token", "webhook", "/api/triggers/hooked/token"),
        ("key", "webhook", "/api/triggers/hooked/key"),
    ]
    assert anon_api.get("/api/jobs/definitions/hooked/triggers/push/state").status_code in (401, 403)
    assert api.get("/api/jobs/definitions/hooked/triggers/nope/state").status_code == 404
