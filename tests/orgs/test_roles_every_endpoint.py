"""Every API endpoint (enumerated from the OpenAPI schema, so a new one cannot be missed) with
every role: allowed where the role table grants the permission, 403 where it does not, and 404
for another organization's object."""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from rest_framework.views import APIView

from jobs.models import SystemConfig
from orgs import roles, services
from orgs.models import ApiToken, Organization, OrgConfig, Subscription, User, UserConfig
from tests.conftest import upload

pytestmark = pytest.mark.django_db

DEFINITION = "job_type: roles-job\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo hi]\n"
ANY = roles.ANY_USER

# What each endpoint needs in the scenario the walk sets up (another member as the target of
# the user routes, the caller's own tokens). A new endpoint fails the coverage test until it is
# added here.
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/api/ants"): "Ant:Read",
    ("GET", "/api/audits"): "Audit:Read",
    ("GET", "/api/ants/{key}"): "Ant:Read",
    ("GET", "/api/artifacts"): "Artifact:Read",
    ("POST", "/api/artifacts"): "Artifact:Write",
    ("GET", "/api/artifacts/{id}"): "Artifact:Read",
    ("DELETE", "/api/artifacts/{id}"): "Artifact:Write",
    ("GET", "/api/artifacts/{id}/download"): "Artifact:Read",
    ("GET", "/api/artifacts/{sha256}/download"): "Artifact:Read",
    ("GET", "/api/configs"): roles.SYSTEM_ADMIN,
    ("POST", "/api/configs"): roles.SYSTEM_ADMIN,
    ("GET", "/api/configs/{id}"): roles.SYSTEM_ADMIN,
    ("PUT", "/api/configs/{id}"): roles.SYSTEM_ADMIN,
    ("DELETE", "/api/configs/{id}"): roles.SYSTEM_ADMIN,
    ("GET", "/api/errors"): "ErrorCode:Read",
    ("POST", "/api/errors"): "ErrorCode:Write",
    ("PUT", "/api/errors"): "ErrorCode:Write",
    ("GET", "/api/errors/{id}"): "ErrorCode:Read",
    ("PUT", "/api/errors/{id}"): "ErrorCode:Write",
    ("DELETE", "/api/errors/{id}"): "ErrorCode:Write",
    ("GET", "/api/executors"): "Ant:Read",
    ("GET", "/api/executors/{container_id}"): "Ant:Read",
    ("DELETE", "/api/executors/{container_id}"): "Ant:Write",
    ("GET", "/api/jobs/definitions"): "JobDefinition:Read",
    ("POST", "/api/jobs/definitions"): "JobDefinition:Write",
    ("GET", "/api/jobs/definitions/{key}"): "JobDefinition:Read",
    ("DELETE", "/api/jobs/definitions/{key}"): "JobDefinition:Write",
    ("PUT", "/api/jobs/definitions/{key}/concurrency"): "JobDefinition:Write",
    ("GET", "/api/jobs/definitions/{key}/configs"): "Config:Read",
    ("POST", "/api/jobs/definitions/{key}/configs"): "Config:Write",
    ("GET", "/api/jobs/definitions/{key}/configs/{config_id}"): "Config:Read",
    ("PUT", "/api/jobs/definitions/{key}/configs/{config_id}"): "Config:Write",
    ("DELETE", "/api/jobs/definitions/{key}/configs/{config_id}"): "Config:Write",
    ("POST", "/api/jobs/definitions/{key}/disable"): "JobDefinition:Write",
    ("GET", "/api/jobs/definitions/{key}/dot"): "JobDefinition:Read",
    ("GET", "/api/jobs/definitions/{key}/dot.png"): "JobDefinition:Read",
    ("GET", "/api/jobs/definitions/type/{job_type}/versions"): "JobDefinition:Read",
    ("POST", "/api/jobs/definitions/{key}/enable"): "JobDefinition:Write",
    ("POST", "/api/jobs/definitions/{key}/pause"): "JobDefinition:Write",
    ("GET", "/api/jobs/definitions/{key}/stats"): "JobDefinition:Read",
    ("GET", "/api/jobs/definitions/{key}/triggers"): "JobDefinition:Read",
    ("GET", "/api/jobs/definitions/{key}/triggers/{name}/state"): "JobDefinition:Read",
    ("POST", "/api/jobs/definitions/{key}/triggers/{name}/state"): "JobDefinition:Write",
    ("POST", "/api/jobs/definitions/{key}/triggers/{name}/reset"): "JobDefinition:Write",
    ("POST", "/api/jobs/definitions/{key}/unpause"): "JobDefinition:Write",
    ("GET", "/api/jobs/definitions/{key}/yaml"): "JobDefinition:Read",
    ("GET", "/api/jobs/plugins"): "JobDefinition:Read",
    ("GET", "/api/jobs/requests"): "JobRequest:Read",
    ("POST", "/api/jobs/requests"): "JobRequest:Submit",
    ("GET", "/api/jobs/requests/{id}"): "JobRequest:Read",
    ("POST", "/api/jobs/requests/{id}/cancel"): "JobRequest:Cancel",
    ("POST", "/api/jobs/requests/{id}/tasks/{task_type}/cancel"): "JobRequest:Cancel",
    ("GET", "/api/jobs/requests/{id}/dot"): "JobRequest:Read",
    ("GET", "/api/jobs/requests/{id}/dot.png"): "JobRequest:Read",
    ("GET", "/api/jobs/requests/{id}/logs"): "JobRequest:Read",
    ("POST", "/api/jobs/requests/{id}/pause"): "JobRequest:Cancel",
    ("POST", "/api/jobs/requests/{id}/restart"): "JobRequest:Cancel",
    ("GET", "/api/jobs/requests/{id}/review"): "JobRequest:Read",
    ("POST", "/api/jobs/requests/{id}/review"): "JobRequest:Approve",
    ("POST", "/api/jobs/requests/{id}/resume"): "JobRequest:Cancel",
    ("POST", "/api/jobs/requests/{id}/trigger"): "JobRequest:Cancel",
    ("GET", "/api/jobs/requests/{id}/wait_time"): "JobRequest:Read",
    ("GET", "/api/jobs/requests/{id}/webhooks"): "JobRequest:Read",
    ("POST", "/api/jobs/requests/bulk"): "JobRequest:Submit",
    ("GET", "/api/jobs/requests/dead_ids"): "JobRequest:Read",
    ("GET", "/api/jobs/requests/stats"): "JobRequest:Read",
    ("GET", "/api/jobs/resources"): "JobResource:Read",
    ("POST", "/api/jobs/resources"): "JobResource:Write",
    ("GET", "/api/jobs/resources/{id}"): "JobResource:Read",
    ("PUT", "/api/jobs/resources/{id}"): "JobResource:Write",
    ("DELETE", "/api/jobs/resources/{id}"): "JobResource:Write",
    ("POST", "/api/jobs/resources/{id}/disable"): "JobResource:Write",
    ("POST", "/api/jobs/resources/{id}/enable"): "JobResource:Write",
    ("POST", "/api/jobs/resources/{id}/configs"): "JobResource:Write",
    ("DELETE", "/api/jobs/resources/{id}/configs/{config_id}"): "JobResource:Write",
    ("GET", "/api/orgs"): "Org:Read",
    ("GET", "/api/reports"): "JobRequest:Read",
    ("POST", "/api/orgs"): roles.SYSTEM_ADMIN,  # members of an org: only a superuser adds another
    ("GET", "/api/orgs/{id}"): "Org:Read",
    ("PUT", "/api/orgs/{id}"): "Org:Admin",
    ("DELETE", "/api/orgs/{id}"): "Org:Admin",
    ("POST", "/api/orgs/{id}/invite"): "User:Write",
    ("GET", "/api/orgs/{org_id}/configs"): "Config:Read",
    ("POST", "/api/orgs/{org_id}/configs"): "Config:Write",
    ("GET", "/api/orgs/{org_id}/configs/{id}"): "Config:Read",
    ("PUT", "/api/orgs/{org_id}/configs/{id}"): "Config:Write",
    ("DELETE", "/api/orgs/{org_id}/configs/{id}"): "Config:Write",
    ("GET", "/api/orgs/{org_id}/configs/{id}/reveal"): "Config:Reveal",
    ("GET", "/api/orgs/usage_report"): "Subscription:Read",
    ("POST", "/api/orgs/usage_report"): "Subscription:Read",
    ("GET", "/api/subscriptions"): "Subscription:Read",
    ("POST", "/api/subscriptions"): "Subscription:Write",
    ("GET", "/api/subscriptions/{id}"): "Subscription:Read",
    ("PUT", "/api/subscriptions/{id}"): "Subscription:Write",
    ("DELETE", "/api/subscriptions/{id}"): "Subscription:Write",
    ("GET", "/api/users"): "User:Read",
    ("POST", "/api/users"): "User:Write",
    ("GET", "/api/users/{id}"): "User:Read",
    ("PUT", "/api/users/{id}"): "User:Write",  # another member
    ("DELETE", "/api/users/{id}"): "User:Write",
    ("PUT", "/api/users/{id}/notify"): "User:Write",  # another member's
    ("GET", "/api/users/{user_id}/tokens"): "User:Read",  # one's own
    ("POST", "/api/users/{user_id}/tokens"): "Token:Write",
    ("DELETE", "/api/users/{user_id}/tokens/{id}"): "Token:Write",
    ("GET", "/api/users/configs"): "Config:Read",
    ("POST", "/api/users/configs"): "Config:Write",
    ("GET", "/api/users/configs/{id}"): "Config:Read",
    ("PUT", "/api/users/configs/{id}"): "Config:Write",
    ("DELETE", "/api/users/configs/{id}"): "Config:Write",
    ("GET", "/api/users/configs/{id}/reveal"): "Config:Reveal",
}

# called by other systems with no user: the trigger's secret authorizes them (tests/triggers)
SIGNED_BY_SECRET = {("POST", "/api/triggers/{job_type}/{name}"), ("POST", "/api/auth/github/webhook")}

CALLERS = ["viewer", "member", "admin", "owner", "superuser"]


def schema_endpoints() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method in ("get", "post", "put", "patch", "delete")
    )


def test_the_table_covers_every_endpoint_of_the_schema():
    assert set(schema_endpoints()) == set(EXPECTED) | SIGNED_BY_SECRET


def test_swagger_names_the_permission_of_every_operation():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    reveal = schema["paths"]["/api/orgs/{org_id}/configs/{id}/reveal"]["get"]["description"]
    assert "`Config:Reveal`" in reveal
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert "Needs the `" in operation.get("description", ""), f"{method} {path}"


def _api_views() -> list[type[APIView]]:
    found: list[type[APIView]] = []

    def walk(patterns: Any, prefix: str) -> None:
        for p in patterns:
            if hasattr(p, "url_patterns"):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif (prefix + str(p.pattern)).startswith("api/") and hasattr(p.callback, "cls"):
                found.append(p.callback.cls)

    walk(get_resolver().url_patterns, "")
    return found


def test_every_api_view_declares_a_permission_for_each_method_it_serves():
    missing = []
    for cls in _api_views():
        if not issubclass(cls, APIView) or cls.__module__.startswith("drf_spectacular"):
            continue
        declared = getattr(cls, "required_permissions", {}) or {}
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(cls, method) and method.upper() not in declared:
                missing.append(f"{cls.__module__}.{cls.__name__} {method.upper()}")
    assert not missing


@dataclass
class World:
    org: Organization
    users: dict[str, User]
    tokens: dict[str, str]
    ids: dict[str, Any]
    other: dict[str, Any]


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _objects(client: APIClient, org: Organization, user: User) -> dict[str, Any]:
    definition = upload(client, DEFINITION).json()
    config = client.post(
        f"/api/jobs/definitions/{definition['id']}/configs", {"name": "K", "value": "v"}, format="json"
    ).json()
    request = client.post("/api/jobs/requests", {"job_type": "roles-job"}, format="json").json()
    artifact = client.post(
        "/api/artifacts",
        {"file": SimpleUploadedFile("r.txt", f"body of {org.name}".encode(), "text/plain")},
        format="multipart",
    ).json()
    error_code = client.post(
        "/api/errors", {"error_code": f"ERR_{org.name.upper()}", "regex": "boom"}, format="json"
    ).json()
    resource = client.post(
        "/api/jobs/resources",
        {"resource_type": "deploy", "quota": 2, "resource_variables": {"Host": "h"}},
        format="json",
    ).json()
    org_config = services.config_save(
        OrgConfig(organization=org), name="ORG_SECRET", value="s3cr3t", secret=True
    )
    user_config = services.config_save(
        UserConfig(user=user, organization=org), name="MINE", value="m1ne-secret", secret=True
    )
    subscription = services.subscription_save(Subscription(organization=org), {})
    target = User.objects.create_user(username=f"target-{org.name}", organization=org, role=roles.MEMBER)
    return {
        "key": definition["id"], "config_id": config["id"], "request": request["id"],
        "artifact": artifact["id"], "sha256": artifact["sha256"], "error_code": error_code["id"], "org": org.pk, "org_config": org_config.pk, "user_config": user_config.pk,
        "subscription": subscription.pk, "target": target.pk, "resource": resource["id"],
        "resource_config": resource["configs"][0]["id"],
    }  # fmt: skip


@pytest.fixture
def world(db) -> World:  # type: ignore[no-untyped-def]
    owner = services.user_ensure(username="acme-owner", org_name="acme", create=True)
    org = owner.organization
    users = {"owner": owner}
    for role in ("admin", "member", "viewer"):
        users[role] = services.user_ensure(username=f"acme-{role}", org_name="acme", create=True, role=role)
    users["superuser"] = User.objects.create_superuser(
        username="root", password="pw-root-123", organization=org, role=roles.OWNER
    )
    tokens = {name: services.token_issue(user=u).plain for name, u in users.items()}
    ids = _objects(_client(tokens["owner"]), org, owner)
    bob = services.user_ensure(username="globex-owner", org_name="globex", create=True)
    other = _objects(_client(services.token_issue(user=bob).plain), bob.organization, bob)
    other["user"] = bob.pk
    other["token"] = ApiToken.objects.filter(user=bob).first().pk
    ids["system_config"] = services.config_save(SystemConfig(), name="S", value="v", secret=False).pk
    return World(org=org, users=users, tokens=tokens, ids=ids, other=other)


def concrete(path: str, ids: dict[str, Any], caller: User, caller_token: int) -> str:
    """``path`` with its parameters filled from ``ids`` (one organization's objects)."""
    if path.startswith("/api/users/{user_id}/tokens"):
        path = path.replace("{user_id}", str(ids.get("user", caller.pk)))
        return path.replace("{id}", str(ids.get("token", caller_token)))
    if path.startswith("/api/users/configs"):
        return path.replace("{id}", str(ids["user_config"]))
    if path.startswith("/api/users/"):
        return path.replace("{id}", str(ids["target"]))
    if path.startswith("/api/orgs/{org_id}"):
        return path.replace("{org_id}", str(ids["org"])).replace("{id}", str(ids["org_config"]))
    if path.startswith("/api/orgs/"):
        return path.replace("{id}", str(ids["org"]))
    if path.startswith("/api/subscriptions/"):
        return path.replace("{id}", str(ids["subscription"]))
    if path.startswith("/api/configs/"):
        return path.replace("{id}", str(ids["system_config"]))
    if path.startswith("/api/artifacts/"):
        return path.replace("{id}", str(ids["artifact"])).replace("{sha256}", ids["sha256"])
    if path.startswith("/api/errors/"):
        return path.replace("{id}", str(ids["error_code"]))
    if path.startswith("/api/jobs/resources/"):
        return path.replace("{id}", str(ids["resource"])).replace("{config_id}", str(ids["resource_config"]))
    if path.startswith("/api/jobs/requests/"):
        return path.replace("{id}", str(ids["request"]))
    path = (
        path.replace("{job_type}", "roles-job")
        .replace("{key}", str(ids["key"]))
        .replace("{config_id}", str(ids["config_id"]))
    )
    return path.replace("{container_id}", "no-such-container")


# a valid body where the view checks the body before it looks the object up
BODIES = {
    "concurrency": {"concurrency": 1},
    "configs": {"name": "N", "value": "v"},
    "invite": {"email": "new@example.com", "role": "viewer"},
}


def call(client: APIClient, method: str, path: str) -> int:
    last = path.rstrip("/").split("/")[-1]
    key = "configs" if "/configs/" in path and last.isdigit() else last
    body = json.dumps(BODIES.get(key, {}) if method in ("PUT", "POST") else {})
    return client.generic(method, path, body, content_type="application/json").status_code


class _Undo(Exception):
    pass


def status_in_savepoint(client: APIClient, method: str, path: str) -> int:
    """The call's status, with whatever it changed in the database undone."""
    status = 0
    try:
        with transaction.atomic():
            status = call(client, method, path)
            raise _Undo()
    except _Undo:
        pass
    return status


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_every_role_on_every_endpoint(world: World, method: str, path: str) -> None:
    needed = EXPECTED[(method, path)]
    wrong: list[str] = []
    for caller in CALLERS:
        user = world.users[caller]
        token = ApiToken.objects.filter(user=user).first()
        url = concrete(path, world.ids, user, token.pk)
        status = status_in_savepoint(_client(world.tokens[caller]), method, url)
        granted = user.permissions()
        allowed = needed in granted
        if allowed and (status in (401, 403) or status >= 500):
            wrong.append(f"{caller} {method} {url}: {status}, expected allowed")
        if not allowed and status != 403:
            wrong.append(f"{caller} {method} {url}: {status}, expected 403")
    assert not wrong


OTHER_ORG = [
    (m, p)
    for (m, p) in sorted(EXPECTED)
    # both organizations name their job type roles-job: the versions route is scoped by its filter
    if "{" in p
    and not p.startswith(("/api/configs", "/api/ants", "/api/executors", "/api/jobs/definitions/type/"))
]


@pytest.mark.parametrize(("method", "path"), OTHER_ORG)
def test_another_organizations_object_is_a_404(world: World, method: str, path: str) -> None:
    owner = world.users["owner"]
    url = concrete(path, world.other, owner, 0)
    assert status_in_savepoint(_client(world.tokens["owner"]), method, url) == 404, url
