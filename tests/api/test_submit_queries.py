"""What one submit costs the submitting process: its queries, the definition columns it reads,
and the queens' wakes it causes (shared by submits close together, never skipped)."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ants.messaging import InProcessTransport
from jobs.domain import events
from jobs.models import JobRequest
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit, requests_submit

pytestmark = pytest.mark.django_db(transaction=True)

DEFINITION = """\
job_type: sq-job
sem_version: "1.0"
platform: linux
required_params: [Branch]
tasks:
- task_type: build
  method: SHELL
  script: ["echo {{.Branch}}"]
"""

PLUGIN = """\
job_type: io.formicary.sq-plugin
sem_version: "2.0"
public_plugin: true
tasks:
- task_type: run
  method: SHELL
  script: ["true"]
"""

OPTIONAL = """\
job_type: sq-optional
tasks:
- task_type: run
  method: SHELL
  script: ["true"]
"""


def submit(member, job_type: str = "sq-job", job_version: str = "", **params: str) -> JobRequest:  # type: ignore[no-untyped-def]
    return request_submit(
        org_id=member.org_id, user=member.user, job_type=job_type, job_version=job_version, params=params
    )


@pytest.fixture
def defined(alice):  # type: ignore[no-untyped-def]
    for text in (DEFINITION, OPTIONAL):
        definition_upload(org_id=alice.org_id, user=alice.user, text=text)
    submit(alice, Branch="warm")  # content types, the user's organization


def test_submit_without_params_is_one_select_and_one_insert_outside_a_transaction(alice, defined):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        request = submit(alice, "sq-optional")
    sql = [q["sql"] for q in ctx.captured_queries]
    assert len(sql) == 2, sql  # no BEGIN or COMMIT either: a single INSERT commits by itself
    assert sql[0].startswith("SELECT") and sql[1].startswith("INSERT")
    # the YAML text and the parsed spec are the heavy columns: a submit never loads them
    assert {"raw_yaml", "spec"} <= request.job_definition.get_deferred_fields()


def test_submit_with_params_writes_them_with_the_request(alice, defined):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        request = submit(alice, Branch="main", Other="x")
    statements = [
        q["sql"] for q in ctx.captured_queries if q["sql"].split()[0] in ("SELECT", "INSERT", "WITH")
    ]
    if connection.vendor == "postgresql":
        # the request and its params in one statement, which commits by itself: one round trip
        # where BEGIN, two INSERTs and COMMIT took four
        assert len(statements) == 2, statements
        assert statements[1].startswith("WITH new AS (INSERT INTO")
        assert not any(q["sql"].startswith(("BEGIN", "SAVEPOINT")) for q in ctx.captured_queries)
    else:
        assert len(statements) == 3, statements  # the definition, the request, one INSERT of all params
        assert any(q["sql"].startswith(("BEGIN", "SAVEPOINT")) for q in ctx.captured_queries)
    assert dict(request.params.values_list("name", "value")) == {"Branch": "main", "Other": "x"}
    stored = JobRequest.objects.get(pk=request.pk)
    assert (stored.created_at, stored.job_type, stored.platform) == (request.created_at, "sq-job", "linux")
    assert not request._state.adding  # the instance counts as saved


def test_many_submits_cost_one_query_per_job_type_and_one_insert_of_each_kind(alice, defined):  # type: ignore[no-untyped-def]
    def submissions(n: int) -> list[dict[str, object]]:
        return [{"job_type": "sq-optional"} for _ in range(n)] + [
            {"job_type": "sq-job", "params": {"Branch": f"b{i}"}, "job_priority": i} for i in range(n)
        ]

    counts = []
    for n in (2, 20):
        with CaptureQueriesContext(connection) as ctx:
            created = requests_submit(org_id=alice.org_id, user=alice.user, submissions=submissions(n))
        counts.append(
            [q["sql"].split()[0] for q in ctx.captured_queries if q["sql"].split()[0] in ("SELECT", "INSERT")]
        )
        assert len(created) == 2 * n and all(r.pk for r in created)
    # two definitions, the requests, their params: the requests go in statements of at most 4 KiB
    # (formicary_site.inserts), 40 of them in two
    assert counts[0] == ["SELECT", "SELECT", "INSERT", "INSERT"], counts
    assert counts[1] == ["SELECT", "SELECT", "INSERT", "INSERT", "INSERT"], counts
    last = created[-1]
    assert (last.job_type, last.job_priority, last.job_version) == ("sq-job", 19, "1.0")
    assert dict(last.params.values_list("name", "value")) == {"Branch": "b19"}
    assert JobRequest.objects.get(pk=created[0].pk).params.count() == 0


def test_many_submits_are_all_or_none_and_name_the_bad_one(alice, defined):  # type: ignore[no-untyped-def]
    before = JobRequest.objects.count()
    bad = [
        {"job_type": "sq-optional"},
        {"job_type": "sq-job", "params": {"Branch": "x"}},
        {"job_type": "sq-job"},
    ]
    with pytest.raises(ValidationError, match=r"requests\[2\]\.params: missing required params Branch"):
        requests_submit(org_id=alice.org_id, user=alice.user, submissions=bad)
    with pytest.raises(ValidationError, match=r"requests\[0\]\.job_type: unknown job type 'nope'"):
        requests_submit(org_id=alice.org_id, user=alice.user, submissions=[{"job_type": "nope"}])
    with pytest.raises(ValidationError, match=r"requests\[0\]\.job_type: unknown job type ''"):
        requests_submit(org_id=alice.org_id, user=alice.user, submissions=[{"params": {}}])
    with pytest.raises(ValidationError, match="at least one request"):
        requests_submit(org_id=alice.org_id, user=alice.user, submissions=[])
    assert JobRequest.objects.count() == before


def test_many_submits_wake_the_queens_once(alice, defined, gated):  # type: ignore[no-untyped-def]
    requests_submit(org_id=alice.org_id, user=alice.user, submissions=[{"job_type": "sq-optional"}] * 30)
    assert gated.first_started.wait(5), "the submits woke no queen"
    gated.release.set()
    assert events.wakes_settled()
    assert gated.wakes == 1


def test_required_params_are_read_from_the_stored_spec(alice, defined):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="missing required params Branch for job type 'sq-job'"):
        submit(alice)
    assert submit(alice, Branch="b").job_version == "1.0"


def test_versions_and_public_plugins_resolve_as_before(alice, bob, defined):  # type: ignore[no-untyped-def]
    assert submit(alice, job_version="1", Branch="b").job_version == "1.0"
    assert submit(alice, job_version="1.0", Branch="b").job_version == "1.0"
    with pytest.raises(ValidationError, match="unknown job type 'sq-job' version '7'"):
        submit(alice, job_version="7", Branch="b")
    definition_upload(org_id=bob.org_id, user=bob.user, text=PLUGIN)
    assert submit(alice, "io.formicary.sq-plugin").job_definition.organization_id == bob.org_id
    assert submit(alice, "io.formicary.sq-plugin", job_version="2.0").job_version == "2.0"
    # an organization's own job type of that name hides the plugin, whatever the version asked
    definition_upload(org_id=alice.org_id, user=alice.user, text=PLUGIN.replace('"2.0"', '"3.0"'))
    assert submit(alice, "io.formicary.sq-plugin").job_definition.organization_id == alice.org_id
    with pytest.raises(ValidationError, match="unknown job type 'io.formicary.sq-plugin' version '2.0'"):
        submit(alice, "io.formicary.sq-plugin", job_version="2.0")


class GatedTransport(InProcessTransport):
    """Counts the queens' wakes; the first one blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0
        self.first_started = threading.Event()
        self.release = threading.Event()

    def wake_queens(self) -> None:
        self.wakes += 1
        self.first_started.set()
        self.release.wait(5)


@pytest.fixture
def gated(use_transport) -> Iterator[GatedTransport]:  # type: ignore[no-untyped-def]
    assert events.wakes_settled()  # a wake left over from an earlier test goes first
    transport = use_transport(GatedTransport())
    yield transport
    transport.release.set()


def test_submits_during_a_wake_share_the_next_one(alice, defined, gated):  # type: ignore[no-untyped-def]
    submit(alice, "sq-optional")
    assert gated.first_started.wait(5), "the first submit woke no queen"
    for _ in range(5):  # none of them waits for the wake in flight
        submit(alice, "sq-optional")
    assert gated.wakes == 1
    gated.release.set()
    assert events.wakes_settled()
    assert gated.wakes == 2  # one more wake, sent after all five commits


def test_a_bulk_submitted_request_is_the_row_a_single_submit_writes(alice, defined):  # type: ignore[no-untyped-def]
    fields = {"job_type": "sq-job", "params": {"Branch": "b"}, "job_priority": 3, "job_group": "g",
              "user_key": "k", "scheduled_at": timezone.now() + timedelta(hours=1)}  # fmt: skip
    single = request_submit(org_id=alice.org_id, user=alice.user, **fields)
    bulk = requests_submit(org_id=alice.org_id, user=alice.user, submissions=[fields, fields])

    def row(pk: int) -> dict[str, object]:
        values = JobRequest.objects.filter(pk=pk).values().get()
        return {k: v for k, v in values.items() if k not in ("id", "created_at", "updated_at")}

    assert row(bulk[0].pk) == row(bulk[1].pk) == row(single.pk)
    assert row(single.pk)["platform"] == "linux"  # the bulk INSERT gives it too
    assert bulk[0].created_at == JobRequest.objects.get(pk=bulk[0].pk).created_at
