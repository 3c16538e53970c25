"""Schemathesis over the OpenAPI schema the product publishes (``/api/schema/``): every
operation's path, query, headers and body, generated from the schema, sent in-process to the WSGI
app with the tokens of two organizations in turn. No answer may be a 5xx or carry a secret value
(issue 14, "Fuzzing in CI")."""

import itertools
import json
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import settings

from tests.fuzz.conftest import assert_no_secret

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]


@pytest.fixture(scope="session")
def api_schema(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    from django.core.wsgi import get_wsgi_application

    # loading the schema is a request: its middleware may touch the database (sessions, the
    # request's user), which a session fixture may only do explicitly
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


schema = schemathesis.pytest.from_fixture("api_schema")
_turn = itertools.count()
# (operation, status) -> answers; FORMICARY_FUZZ_REPORT=<file> writes them (docs/security.md)
_seen: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report():  # type: ignore[no-untyped-def]
    yield
    path = os.environ.get("FORMICARY_FUZZ_REPORT")
    if path:
        operations = {op for op, _ in _seen}
        statuses: Counter[int] = Counter()
        for (_, status), n in _seen.items():
            statuses[status] += n
        summary = {"calls": sum(_seen.values()), "operations": len(operations),
                   "statuses": dict(sorted(statuses.items()))}  # fmt: skip
        with open(path, "a") as out:
            out.write(json.dumps(summary) + "\n")


@schema.parametrize()
@settings(settings.get_profile("formicary-fuzz"))
def test_no_server_error_and_no_secret(case, fuzz_world, keep_connection):  # type: ignore[no-untyped-def]
    member = fuzz_world.alice if next(_turn) % 2 == 0 else fuzz_world.bob
    headers = {**(case.headers or {}), "Authorization": f"Bearer {member.token}"}
    response = case.call(headers=headers)
    where = f"{case.method} {case.formatted_path} ({response.status_code})"
    _seen[(case.operation.label, response.status_code)] += 1
    assert response.status_code < 500, f"{where}: {response.content[:500]!r}\n{case.as_curl_command()}"
    assert_no_secret(response.content.decode("utf-8", "replace"), where)
