"""The shared fixture world: two organizations, their users and tokens, API clients for each."""

from dataclasses import dataclass
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "examples"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL (skipped in the SQLite pass)")


@dataclass
class Member:
    user: object
    token: str
    org_id: int


def _member(username: str, org_name: str, *, staff: bool = False) -> Member:
    from orgs import services

    user = services.user_ensure(username=username, org_name=org_name, create=True)
    if staff:
        user.is_staff = True
        user.set_password("pw-" + username)
        user.save()
    issued = services.token_issue(user=user)
    return Member(user=user, token=issued.plain, org_id=user.organization_id)


@pytest.fixture
def alice(db) -> Member:  # type: ignore[no-untyped-def]
    """Member of acme."""
    return _member("alice", "acme", staff=True)


@pytest.fixture
def bob(db) -> Member:  # type: ignore[no-untyped-def]
    """Member of globex: must never see acme's data."""
    return _member("bob", "globex", staff=True)


def _client(member: Member):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {member.token}")
    return client


@pytest.fixture
def api(alice):  # type: ignore[no-untyped-def]
    return _client(alice)


@pytest.fixture
def bob_api(bob):  # type: ignore[no-untyped-def]
    return _client(bob)


@pytest.fixture
def anon_api(db):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    return APIClient()


def example_paths() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def upload(client, text: str, content_type: str = "application/yaml"):  # type: ignore[no-untyped-def]
    return client.post("/api/jobs/definitions", data=text.encode(), content_type=content_type)
