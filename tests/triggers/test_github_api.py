"""GitHub post-commit: POST /api/auth/github/webhook?job_type=X signed with GithubWebhookSecret."""

import json

import pytest

from jobs.models import JobRequest, JobRequestParam
from tests.triggers.conftest import SECRET, define, sign

pytestmark = pytest.mark.django_db

JOB = "job_type: built\ntasks:\n- task_type: t\n  method: SHELL\n  script: [true]\n"
URL = "/api/auth/github/webhook?job_type=built"
PUSH = {
    "ref": "refs/heads/feature/x",
    "after": "0123456789abcdef0123456789abcdef01234567",
    "head_commit": {"id": "0123456789abcdef0123456789abcdef01234567", "message": "Fix {{ the }} build"},
    "repository": {"full_name": "acme/widgets", "name": "widgets"},
}


def deliver(client, payload: dict, event: str = "push", secret: str = SECRET, delivery: str = "d-1"):  # type: ignore[no-untyped-def]
    body = json.dumps(payload).encode()
    return client.post(URL, data=body, content_type="application/json", HTTP_X_GITHUB_EVENT=event,
                       HTTP_X_HUB_SIGNATURE_256=sign(body, secret), HTTP_X_GITHUB_DELIVERY=delivery)  # fmt: skip


def test_push_with_a_correct_signature_starts_the_job_with_git_params(api, anon_api):
    define(api, JOB, {"GithubWebhookSecret": SECRET})
    resp = deliver(anon_api, PUSH)
    assert resp.status_code == 201, resp.content
    request = JobRequest.objects.get(pk=resp.json()["request_id"])
    params = {p.name: p.plain_value() for p in JobRequestParam.objects.filter(job_request=request)}
    assert params == {
        "GitBranch": "feature/x",
        "GitCommitID": PUSH["after"],
        "GitCommitMessage": "Fix {{ the }} build",  # a value, never rendered as a template
        "GitRepository": "acme/widgets",
    }
    # GitHub's redelivery of the same delivery starts nothing new
    again = deliver(anon_api, PUSH)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert JobRequest.objects.count() == 1
    listing = api.get("/api/jobs/definitions/built/triggers").json()
    assert listing[-1]["name"] == "github" and listing[-1]["firings"][0]["outcome"] == "fired"


def test_wrong_or_missing_signature_is_401(api, anon_api):
    define(api, JOB, {"GithubWebhookSecret": SECRET})
    assert deliver(anon_api, PUSH, secret="not-the-secret-value").status_code == 401
    body = json.dumps(PUSH).encode()
    unsigned = anon_api.post(URL, data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="push")
    assert unsigned.status_code == 401
    assert JobRequest.objects.count() == 0


def test_ping_is_answered_and_other_events_are_ignored_with_a_reason(api, anon_api):
    define(api, JOB, {"GithubWebhookSecret": SECRET})
    ping = deliver(anon_api, {"zen": "Keep it logically awesome."}, event="ping")
    assert ping.status_code == 200 and "pong" in ping.json()["message"]
    issues = deliver(anon_api, {"action": "opened"}, event="issues")
    assert issues.status_code == 202 and "'issues' is not handled" in issues.json()["ignored"]
    deleted = deliver(anon_api, {**PUSH, "deleted": True, "after": "0" * 40})
    assert deleted.status_code == 202 and "deleted" in deleted.json()["ignored"]
    assert JobRequest.objects.count() == 0


def test_without_the_secret_config_or_job_type(api, anon_api):
    define(api, JOB)
    assert deliver(anon_api, PUSH).status_code == 404
    assert (
        anon_api.post("/api/auth/github/webhook", data=b"{}", content_type="application/json").status_code
        == 400
    )
