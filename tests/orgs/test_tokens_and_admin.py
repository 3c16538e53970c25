"""API tokens from the command line, secrets at rest, and the organization-scoped admin."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from jobs.models import JobDefinition
from orgs.models import ApiToken, Organization, OrgConfig, User
from tests.conftest import upload

pytestmark = pytest.mark.django_db


def test_create_api_token_command_creates_org_user_and_prints_token_last():
    out = StringIO()
    call_command("create_api_token", "carol", "--org", "initech", "--create", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    user = User.objects.get(username="carol")
    assert user.organization.name == "initech"
    assert ApiToken.objects.get(user=user).digest == ApiToken.digest_of(token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/jobs/definitions").status_code == 200


def test_create_api_token_without_create_needs_existing_user():
    with pytest.raises(CommandError, match="does not exist"):
        call_command("create_api_token", "nobody", "--org", "nowhere", stdout=StringIO())
    Organization.objects.create(name="umbrella")
    with pytest.raises(CommandError, match="user 'nobody'"):
        call_command("create_api_token", "nobody", "--org", "umbrella", stdout=StringIO())


def test_token_is_stored_only_as_a_digest(alice):
    assert not ApiToken.objects.filter(digest=alice.token).exists()
    assert ApiToken.objects.filter(digest=ApiToken.digest_of(alice.token)).exists()


def test_org_config_secret_is_encrypted_at_rest(alice):
    config = OrgConfig(organization_id=alice.org_id, name="AWS_SECRET", secret=True)
    config.set_value("s3cr3t-value")
    config.save()
    config.refresh_from_db()
    assert "s3cr3t-value" not in config.value
    assert config.plain_value() == "s3cr3t-value"
    assert config.display_value() == "****"


def test_admin_shows_a_staff_user_only_their_organization(client, alice, bob, api, bob_api):
    upload(api, "job_type: acme-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo]\n")
    upload(bob_api, "job_type: globex-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo]\n")
    for model in ("jobdefinition",):
        from django.contrib.auth.models import Permission

        for member in (alice, bob):
            member.user.user_permissions.add(*Permission.objects.filter(content_type__model=model))
    client.login(username="bob", password="pw-bob")
    page = client.get("/admin/jobs/jobdefinition/").content.decode()
    assert "globex-job" in page and "acme-job" not in page
    acme_def = JobDefinition.objects.get(job_type="acme-job")
    assert client.get(f"/admin/jobs/jobdefinition/{acme_def.pk}/change/").status_code in (302, 404)


def test_superuser_admin_pages_all_render(admin_client, api):
    upload(api, "job_type: acme-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo]\n")
    for url in ("/admin/", "/admin/jobs/jobdefinition/", "/admin/jobs/jobrequest/", "/admin/jobs/jobexecution/",
                "/admin/jobs/taskexecution/", "/admin/jobs/jobconfig/", "/admin/jobs/errorcode/",
                "/admin/jobs/systemconfig/", "/admin/orgs/organization/", "/admin/orgs/user/",
                "/admin/orgs/apitoken/", "/admin/orgs/orgconfig/", "/admin/ants/antregistration/",
                "/admin/artifacts/artifact/", "/admin/jobs/tasklogchunk/", "/admin/jobs/queenlease/", "/admin/jobs/jobconfig/add/", "/admin/orgs/orgconfig/add/"):  # fmt: skip
        assert admin_client.get(url).status_code == 200, url
    acme_def = JobDefinition.objects.get(job_type="acme-job")
    assert admin_client.get(f"/admin/jobs/jobdefinition/{acme_def.pk}/change/").status_code == 200
