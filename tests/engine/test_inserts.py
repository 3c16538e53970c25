"""One INSERT of many rows without the ORM's compiler: the rows it writes are the rows
``bulk_create`` would have written, on either database (``scripts/test`` runs this on SQLite too)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from formicary_site import inserts
from formicary_site.inserts import insert_rows
from jobs.models import JobExecution, TaskExecution, TaskLogChunk
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

pytestmark = pytest.mark.django_db

DEFINITION = """\
job_type: ins-job
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
"""

TASK_COLUMNS = ("organization_id", "job_execution_id", "task_type", "method", "task_order")


@pytest.fixture
def execution(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="ins-job")
    return JobExecution.objects.create(organization_id=alice.org_id, job_request=request)


def test_rows_get_their_values_the_defaults_and_ids_in_order(execution):  # type: ignore[no-untyped-def]
    rows = [(execution.organization_id, execution.pk, f"t{i}", "SHELL", i) for i in range(5)]
    with CaptureQueriesContext(connection) as ctx:
        ids = insert_rows(TaskExecution, TASK_COLUMNS, rows)
    assert len(ctx.captured_queries) == 1
    tasks = {t.pk: t for t in TaskExecution.objects.filter(pk__in=ids)}
    assert [tasks[i].task_type for i in ids] == [f"t{i}" for i in range(5)]
    assert [tasks[i].task_order for i in ids] == list(range(5))
    # what the model's defaults say, as bulk_create would have written them
    reference = TaskExecution.objects.bulk_create(
        [
            TaskExecution(
                organization_id=execution.organization_id,
                job_execution=execution,
                task_type="ref",
                method="SHELL",
            )
        ]  # fmt: skip
    )[0]
    reference.refresh_from_db()
    task = tasks[ids[0]]
    for name in ("task_state", "attempt", "retried", "allow_failure", "exit_code", "exit_message", "ant_id",
                 "context", "stdout", "cost_factor", "not_before", "started_at", "ended_at"):  # fmt: skip
        assert getattr(task, name) == getattr(reference, name), name
    assert task.updated_at is not None  # auto_now


def test_quotes_in_values_and_json_are_stored_as_given(execution):  # type: ignore[no-untyped-def]
    (task_id,) = insert_rows(TaskExecution, (*TASK_COLUMNS, "context"),
                             [(execution.organization_id, execution.pk, "it's", "SHELL", 0, {"a": "b'c"})])  # fmt: skip
    task = TaskExecution.objects.get(pk=task_id)
    assert (task.task_type, task.context) == ("it's", {"a": "b'c"})


def test_many_rows_go_in_statements_within_the_parameter_limit(execution, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(connection.features, "max_query_params", 20)  # 3 rows of 6 parameters each
    rows = [(execution.organization_id, execution.pk, f"t{i}", "SHELL", i) for i in range(7)]
    with CaptureQueriesContext(connection) as ctx:
        ids = insert_rows(TaskExecution, TASK_COLUMNS, rows)
    assert [q["sql"].split()[0] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]] == [
        "INSERT"
    ] * 3
    assert len(set(ids)) == 7
    assert (
        list(TaskExecution.objects.filter(pk__in=ids).order_by("task_order").values_list("pk", flat=True))
        == ids
    )


def test_conflicting_rows_are_skipped_when_asked(execution):  # type: ignore[no-untyped-def]
    row = (execution.organization_id, execution.pk, "same", "SHELL", 0)
    insert_rows(TaskExecution, TASK_COLUMNS, [row])
    assert insert_rows(TaskExecution, TASK_COLUMNS, [row], ignore_conflicts=True) == []
    assert TaskExecution.objects.filter(job_execution=execution, task_type="same").count() == 1


def test_nothing_to_insert_sends_nothing(db):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        assert insert_rows(TaskExecution, TASK_COLUMNS, []) == []
    assert ctx.captured_queries == []


def test_columns_it_cannot_default_must_be_given(db):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no columns"):
        insert_rows(TaskExecution, ("nope",), [(1,)])
    with pytest.raises(ValueError, match=r"TaskLogChunk\.first_seq: no default"):
        insert_rows(TaskLogChunk, ("organization_id", "task_execution_id", "text"), [(1, 1, "x")])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's cache: PostgreSQL only")
def test_statements_of_many_parameters_are_parsed_once(execution):  # type: ignore[no-untyped-def]
    from psycopg import _queries

    from formicary_site import psycopg_cache

    psycopg_cache.widen()  # what the queen does at its start (jobs.fastsql.for_queen)
    rows = [
        (execution.organization_id, execution.pk, f"p{i}", "SHELL", i) for i in range(20)
    ]  # 120 parameters
    insert_rows(TaskExecution, TASK_COLUMNS, rows[:10] + rows[10:])
    before = _queries._query2pg_client.cache_info()
    insert_rows(TaskExecution, TASK_COLUMNS, [(o, e, f"q{t}", m, n) for o, e, t, m, n in rows])
    after = _queries._query2pg_client.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


def test_long_statements_are_split_and_all_or_none(execution, monkeypatch):  # type: ignore[no-untyped-def]
    from django.db import IntegrityError, transaction

    monkeypatch.setattr(inserts, "STATEMENT_BYTES", 700)  # a few task rows a statement
    rows = [(execution.organization_id, execution.pk, f"s{i}", "SHELL", i) for i in range(10)]
    with CaptureQueriesContext(connection) as ctx:
        ids = insert_rows(TaskExecution, TASK_COLUMNS, rows)
    inserts_sent = [q for q in ctx.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts_sent) > 2
    assert (
        list(TaskExecution.objects.filter(pk__in=ids).order_by("task_order").values_list("pk", flat=True))
        == ids
    )
    # a row of the last statement conflicts: the statements before it are undone too
    again = [(execution.organization_id, execution.pk, f"t{i}", "SHELL", i) for i in range(9)] + [rows[0]]
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(TaskExecution, TASK_COLUMNS, again)
    assert not TaskExecution.objects.filter(job_execution=execution, task_type__startswith="t").exists()
