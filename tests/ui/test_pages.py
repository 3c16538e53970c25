"""Server-rendered pages: every page renders for its organization; another one gets a 404."""

import pytest
from django.test import Client

from jobs.models import JobConfig, JobDefinition, JobRequest
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs.models import ApiToken, Invitation, User

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: ui-job
description: a job for the pages
required_params: [Target]
tasks:
- task_type: build
  method: SHELL
  script: ["echo building {{.Target}}"]
  on_completed: test
- task_type: test
  method: SHELL
  script: [echo ok]
"""


def login(member) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(member.user)
    return client


@pytest.fixture
def acme(alice):  # type: ignore[no-untyped-def]
    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="ui-job", params={"Target": "x"})
    return {"definition": definition, "request": request}


def test_every_page_renders(alice, acme):  # type: ignore[no-untyped-def]
    client = login(alice)
    d, r = acme["definition"].pk, acme["request"].pk
    for url in ["/", "/jobs/definitions", "/jobs/definitions?q=ui", "/jobs/definitions/upload",
                f"/jobs/definitions/{d}", f"/jobs/definitions/{d}/graph.svg", "/jobs/requests",
                "/jobs/requests?tab=waiting", "/jobs/requests?tab=done&state=FAILED", f"/jobs/requests/{r}",
                f"/jobs/requests/{r}/state.json", "/artifacts", "/ants", "/errors", "/jobs/resources", "/account"]:  # fmt: skip
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
    detail = client.get(f"/jobs/definitions/{d}").content.decode()
    assert "<svg" in detail and 'name="param_Target"' in detail
    waiting = client.get("/jobs/requests?tab=waiting").content.decode()
    assert f"/jobs/requests/{r}" in waiting


def test_another_organization_gets_404(bob, acme):  # type: ignore[no-untyped-def]
    client = login(bob)
    d, r = acme["definition"].pk, acme["request"].pk
    for url in [f"/jobs/definitions/{d}", f"/jobs/definitions/{d}/graph.svg", f"/jobs/requests/{r}",
                f"/jobs/requests/{r}/state.json"]:  # fmt: skip
        assert client.get(url).status_code == 404, url
    for url in [f"/jobs/definitions/{d}/toggle", f"/jobs/definitions/{d}/submit", f"/jobs/requests/{r}/cancel",
                f"/jobs/definitions/{d}/configs"]:  # fmt: skip
        assert client.post(url, {"param_Target": "y", "name": "N", "value": "v"}).status_code == 404, url
    for url in ["/", "/jobs/requests?tab=waiting", "/jobs/definitions"]:
        assert "ui-job" not in client.get(url).content.decode()
    assert JobRequest.objects.filter(organization_id=bob.org_id).count() == 0
    assert not JobDefinition.objects.get(pk=d).disabled
    assert not JobConfig.objects.filter(name="N").exists()


def test_pages_need_login(db):  # type: ignore[no-untyped-def]
    resp = Client().get("/jobs/requests")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    assert Client().get("/accounts/login/").status_code == 200


def test_upload_then_submit_from_the_form(alice):  # type: ignore[no-untyped-def]
    client = login(alice)
    resp = client.post("/jobs/definitions/upload", {"text": "job_type: bad\ntasks: []\n"})
    assert resp.status_code == 200 and 'id="upload-errors"' in resp.content.decode()
    resp = client.post("/jobs/definitions/upload", {"text": DEFINITION})
    definition = JobDefinition.objects.get(organization_id=alice.org_id, job_type="ui-job")
    assert resp.status_code == 302 and resp["Location"] == f"/jobs/definitions/{definition.pk}"
    resp = client.post(f"/jobs/definitions/{definition.pk}/submit", {"param_Target": ""})
    assert resp.status_code == 400
    resp = client.post(f"/jobs/definitions/{definition.pk}/submit",
                       {"param_Target": "prod", "extra_params": '{"Extra": 1}', "job_priority": 3})  # fmt: skip
    request = JobRequest.objects.get(organization_id=alice.org_id)
    assert resp["Location"] == f"/jobs/requests/{request.pk}"
    assert request.job_priority == 3
    assert dict(request.params.values_list("name", "value")) == {"Target": "prod", "Extra": "1"}


def test_upload_shows_the_fields_not_acted_on(alice):  # type: ignore[no-untyped-def]
    client = login(alice)
    text = "job_type: warned\ntasks:\n- task_type: t\n  method: SHELL\n  report_stdout: true\n  script: [x]\n"
    resp = client.post("/jobs/definitions/upload", {"text": text}, follow=True)
    assert (
        "task &#x27;t&#x27;: field &#x27;report_stdout&#x27;: accepted but not acted on yet"
        in resp.content.decode()
    )


def test_disable_configs_and_cancel(alice, acme):  # type: ignore[no-untyped-def]
    client = login(alice)
    d, r = acme["definition"].pk, acme["request"].pk
    client.post(f"/jobs/definitions/{d}/toggle")
    assert JobDefinition.objects.get(pk=d).disabled
    client.post(f"/jobs/definitions/{d}/configs", {"name": "ApiKey", "value": "s3cret", "secret": "on"})
    config = JobConfig.objects.get(name="ApiKey")
    assert config.plain_value() == "s3cret"
    assert "s3cret" not in client.get(f"/jobs/definitions/{d}").content.decode()
    client.post(f"/jobs/definitions/{d}/configs/{config.pk}/delete")
    assert not JobConfig.objects.filter(name="ApiKey").exists()
    assert 'id="cancel-request"' in client.get(f"/jobs/requests/{r}").content.decode()
    client.post(f"/jobs/requests/{r}/cancel")
    assert JobRequest.objects.get(pk=r).job_state == "CANCELLED"
    assert 'id="cancel-request"' not in client.get(f"/jobs/requests/{r}").content.decode()


def test_tokens_on_the_account_page(alice):  # type: ignore[no-untyped-def]
    client = login(alice)
    resp = client.post("/account/tokens", {"name": "ci"})
    page = resp.content.decode()
    token = ApiToken.objects.get(user=alice.user, name="ci")
    plain = page.split('id="new-token">')[1].split("<")[0]
    assert ApiToken.digest_of(plain) == token.digest
    assert plain not in client.get("/account").content.decode()
    client.post(f"/account/tokens/{token.pk}/delete")
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_new_user_creates_or_joins_an_organization(alice):  # type: ignore[no-untyped-def]
    newcomer = User.objects.create_user(username="carol", password="pw-carol-123")
    client = Client()
    client.force_login(newcomer)
    assert client.get("/")["Location"] == "/orgs/setup"
    resp = client.post("/orgs/setup", {"join-code": "nope", "join": ""})
    assert "unknown, used or expired" in resp.content.decode()
    # alice invites; carol joins acme with the code
    login(alice).post("/account/invite", {"email": "carol@example.com"})
    code = Invitation.objects.get(email="carol@example.com").code
    resp = client.post("/orgs/setup", {"join-code": code, "join": ""})
    assert resp["Location"] == "/"
    newcomer.refresh_from_db()
    assert newcomer.organization_id == alice.org_id
    # the invitation is used up
    dave = User.objects.create_user(username="dave")
    other = Client()
    other.force_login(dave)
    assert (
        "unknown, used or expired"
        in other.post("/orgs/setup", {"join-code": code, "join": ""}).content.decode()
    )
    other.post("/orgs/setup", {"create-name": "dave-corp", "create": ""})
    dave.refresh_from_db()
    assert dave.organization.name == "dave-corp"


def test_signup_with_a_local_account(db):  # type: ignore[no-untyped-def]
    client = Client()
    resp = client.post("/accounts/signup/", {"username": "erin", "email": "erin@example.com",
                                              "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"})  # fmt: skip
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert User.objects.filter(username="erin").exists()
    assert client.get("/")["Location"] == "/orgs/setup"


def test_social_buttons_only_when_configured(db, settings):  # type: ignore[no-untyped-def]
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert "GitHub" not in Client().get("/accounts/login/").content.decode()
    settings.SOCIALACCOUNT_PROVIDERS = {"github": {"APP": {"client_id": "id", "secret": "s", "key": ""}}}
    assert "GitHub" in Client().get("/accounts/login/").content.decode()


def test_pause_then_resume_from_the_page(alice, acme):  # type: ignore[no-untyped-def]
    client = login(alice)
    r = acme["request"].pk
    page = client.get(f"/jobs/requests/{r}").content.decode()
    assert "/pause" in page and "/restart" not in page
    client.post(f"/jobs/requests/{r}/pause")
    assert JobRequest.objects.get(pk=r).job_state == "PAUSED"
    paused = client.get(f"/jobs/requests/{r}").content.decode()
    assert "/resume" in paused and "/restart" not in paused  # a paused request offers Resume
    client.post(f"/jobs/requests/{r}/resume")
    assert JobRequest.objects.get(pk=r).job_state == "PENDING"
    assert client.post(f"/jobs/requests/{r}/explode").status_code == 404
