"""The fuzz suites' budget and world: two organizations, each with a definition, a request and
secrets whose values must never appear in an answer."""

import os
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

try:  # channels.testing imports daphne's live server; only WebsocketCommunicator is used here
    import daphne.testing  # noqa: F401
except ImportError:
    _stub = types.ModuleType("daphne.testing")
    _stub.DaphneProcess = object  # type: ignore[attr-defined]
    sys.modules.setdefault("daphne", types.ModuleType("daphne"))
    sys.modules["daphne.testing"] = _stub

# Examples per API operation / per websocket or loader property: small, fixed, the same every run
# (derandomized), so the suites fit the test command's time.
EXAMPLES = int(os.environ.get("FORMICARY_FUZZ_EXAMPLES", "10"))

settings.register_profile(
    "formicary-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

SECRET_VALUES = ("org-secret-7f3a9c2e", "job-secret-b81d04aa", "param-secret-5c6e11f9")

DEFINITION = """\
job_type: fuzzed
description: a definition for the fuzzers
tasks:
- task_type: build
  method: SHELL
  tags: ["{{.Tag}}"]
  script: ["echo {{.Word}}"]
  on_completed: done
- task_type: done
  method: SHELL
  script: [echo ok]
"""


@dataclass
class World:
    alice: Any
    bob: Any
    ids: dict[str, int]


def make_world(alice: Any, bob: Any) -> World:
    from jobs.services.definitions import definition_upload, job_config_save
    from jobs.services.requests import request_submit
    from orgs.models import OrgConfig

    ids: dict[str, int] = {}
    for member in (alice, bob):
        definition, _ = definition_upload(org_id=member.org_id, user=member.user, text=DEFINITION)
        ids.setdefault("definition", definition.pk)
    config = OrgConfig(organization_id=alice.org_id, name="OrgPassword", secret=True)
    config.set_value(SECRET_VALUES[0])
    config.save()
    ids["config"] = job_config_save(
        org_id=alice.org_id, job_type="fuzzed", name="JobToken", value=SECRET_VALUES[1], secret=True
    ).pk
    request = request_submit(
        org_id=alice.org_id, user=alice.user, job_type="fuzzed",
        params={"Word": "hi", "Tag": "x", "ApiPassword": SECRET_VALUES[2]}, secret_params={"ApiPassword"},
    )  # fmt: skip
    ids["request"] = request.pk
    return World(alice=alice, bob=bob, ids=ids)


def assert_no_secret(text: str, where: str) -> None:
    for value in SECRET_VALUES:
        assert value not in text, f"{where}: a secret value is in the answer"


@pytest.fixture
def fuzz_world(alice, bob) -> World:  # type: ignore[no-untyped-def]
    return make_world(alice, bob)


@pytest.fixture
def keep_connection():  # type: ignore[no-untyped-def]
    """Requests sent straight to the WSGI app keep the test's database connection open (as
    Django's test client does): its request signals would close it mid-transaction."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
