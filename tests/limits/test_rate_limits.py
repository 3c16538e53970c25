"""Per-organization submit rate limits: 429 with Retry-After past the burst (issue 14, finding 6)."""

import os
import uuid

import pytest
from django.test import Client

from jobs.services import rate_limits
from tests.conftest import upload

DEFINITION = """\
job_type: rated
tasks:
- task_type: t
  method: SHELL
  script: ["true"]
"""


@pytest.fixture
def limited(settings):  # type: ignore[no-untyped-def]
    """Bursts of 3, then one a minute; fresh buckets for each test (organization ids repeat)."""
    settings.FORMICARY_SUBMIT_RATE = "1/m"
    settings.FORMICARY_REDIS_PREFIX = f"t{uuid.uuid4().hex[:8]}"
    settings.FORMICARY_SUBMIT_BURST = 3
    rate_limits.buckets.cache_clear()
    yield settings
    rate_limits.buckets.cache_clear()


def _submit(api):  # type: ignore[no-untyped-def]
    return api.post("/api/jobs/requests", {"job_type": "rated"}, format="json")


def test_429_with_retry_after_past_the_burst_and_other_orgs_unaffected(limited, api, bob_api):  # type: ignore[no-untyped-def]
    assert upload(api, DEFINITION).status_code == 201
    assert upload(bob_api, DEFINITION).status_code == 201
    assert [_submit(api).status_code for _ in range(3)] == [201, 201, 201]
    refused = _submit(api)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert "submits faster than FORMICARY_SUBMIT_RATE=1/m (bursts of FORMICARY_SUBMIT_BURST=3)" in error
    assert "Expected available in" in error
    assert _submit(bob_api).status_code == 201  # another organization has its own bucket


def test_a_bulk_submit_counts_once_however_many_it_holds(limited, api):  # type: ignore[no-untyped-def]
    assert upload(api, DEFINITION).status_code == 201
    bulk = {"requests": [{"job_type": "rated"}] * 1000}
    assert api.post("/api/jobs/requests/bulk", bulk, format="json").status_code == 201
    assert api.post("/api/jobs/requests/bulk", bulk, format="json").status_code == 201
    assert _submit(api).status_code == 201
    refused = api.post("/api/jobs/requests/bulk", bulk, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1


def test_the_ui_submit_is_limited_too(limited, alice):  # type: ignore[no-untyped-def]
    from jobs.models import JobDefinition
    from jobs.services.definitions import definition_upload

    definition, _ = definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    assert isinstance(definition, JobDefinition)
    client = Client()
    client.force_login(alice.user)
    codes = [
        client.post(f"/jobs/definitions/{definition.pk}/submit", {"job_priority": "1"}).status_code
        for _ in range(4)
    ]
    assert codes == [302, 302, 302, 429]
    refused = client.post(f"/jobs/definitions/{definition.pk}/submit", {"job_priority": "1"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "FORMICARY_SUBMIT_RATE" in refused.content.decode()


BUCKETS = ["local"] + (["redis"] if os.environ.get("REDIS_URL") else [])


@pytest.mark.parametrize("kind", BUCKETS)
def test_buckets_refill_at_the_rate(kind: str) -> None:
    rate = rate_limits.Rate(per_sec=1000.0, burst=2, text="1000/s")
    store = (
        rate_limits.LocalBuckets()
        if kind == "local"
        else rate_limits.RedisBuckets(os.environ["REDIS_URL"], f"t{uuid.uuid4().hex[:8]}")
    )
    key = uuid.uuid4().hex
    assert store.take(key, rate) == 0 and store.take(key, rate) == 0
    slow = rate_limits.Rate(per_sec=1 / 60, burst=1, text="1/m")
    other = uuid.uuid4().hex
    assert store.take(other, slow) == 0
    assert 55 < store.take(other, slow) <= 60  # empty: a minute to the next token


def test_rate_settings_are_parsed_or_refused() -> None:
    assert rate_limits.parse_rate("600/m", 100) == rate_limits.Rate(per_sec=10.0, burst=100, text="600/m")
    assert rate_limits.parse_rate("0", 5) is None
    with pytest.raises(ValueError, match="600/m"):
        rate_limits.parse_rate("fast", 5)
