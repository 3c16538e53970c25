"""Shared pieces of the trigger tests: uploading a definition with triggers and its secrets."""

import hashlib
import hmac

from tests.conftest import upload

SECRET = "s3cr3t-value-for-tests"


def define(api, text: str, secrets: dict[str, str] | None = None) -> dict:  # type: ignore[no-untyped-def]
    resp = upload(api, text)
    assert resp.status_code == 201, resp.content
    definition = resp.json()
    for name, value in (secrets or {}).items():
        url = f"/api/jobs/definitions/{definition['id']}/configs"
        assert api.post(url, {"name": name, "value": value, "secret": True}, format="json").status_code == 201
    return definition


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
