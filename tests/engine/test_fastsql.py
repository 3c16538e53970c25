"""The speed tricks' fence (jobs/fastsql.py): private names only inside it, each pinned by a
test that fails when the library changes it; the same writes with the switch on and off; the
psycopg patch in the queen process only."""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DataError, connection, transaction
from django.utils import timezone

from jobs import fastsql
from jobs.models import JobExecution, JobRequest, TaskExecution
from jobs.services.definitions import definition_upload
from jobs.services.requests import _REQUEST_COLUMNS as COLUMNS
from jobs.services.requests import request_submit

ROOT = Path(__file__).resolve().parents[2]
# the modules behind the fence: only they may name another library's private parts
FENCED = {
    "jobs/fastsql.py",
    "jobs/queen/compiled.py",
    "formicary_site/inserts.py",
    "formicary_site/psycopg_cache.py",
}
PRIVATE = re.compile(
    r"\b_queries\b|_group_key|\._state\.|get_compiler|results_iter|klass_info|get_related_populators"
    r"|annotation_col_map|_query2pg_client"
)
DEFINITION = """\
job_type: fence-job
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
"""


def _product_files() -> list[Path]:
    skip = {"tests", "bench", "node_modules", "static"}
    return [
        p for p in ROOT.rglob("*.py")
        if not (set(p.relative_to(ROOT).parts[:-1]) & skip) and not p.relative_to(ROOT).parts[0].startswith(".")
    ]  # fmt: skip


def test_private_names_appear_only_behind_the_fence() -> None:
    outside = {
        str(p.relative_to(ROOT)): sorted(set(PRIVATE.findall(p.read_text())))
        for p in _product_files()
        if str(p.relative_to(ROOT)) not in FENCED and PRIVATE.search(p.read_text())
    }
    assert outside == {}


def test_the_fast_modules_are_reached_through_the_fence() -> None:
    importers = {
        str(p.relative_to(ROOT))
        for p in _product_files()
        if re.search(r"formicary_site(\.| import )(inserts|psycopg_cache)\b", p.read_text())
    }
    assert importers - FENCED == set()


@pytest.fixture
def fast(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Run the test with the switch as its parameter says."""
    before = settings.FORMICARY_FAST_SQL
    settings.FORMICARY_FAST_SQL = request.param
    yield request.param
    settings.FORMICARY_FAST_SQL = before


@pytest.fixture
def execution(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="fence-job")
    return JobExecution.objects.create(organization_id=alice.org_id, job_request=request)


@pytest.mark.django_db
@pytest.mark.parametrize("fast", [True, False], indirect=True, ids=["fast", "orm"])
def test_the_writes_are_the_same_either_way(fast, execution):  # type: ignore[no-untyped-def]
    columns = ("organization_id", "job_execution_id", "task_type", "method", "task_order")
    ids = fastsql.insert_rows(TaskExecution, columns, [(execution.organization_id, execution.pk, f"t{i}", "SHELL", i)
                                                       for i in range(3)])  # fmt: skip
    assert [TaskExecution.objects.get(pk=i).task_type for i in ids] == ["t0", "t1", "t2"]
    assert fastsql.insert_rows(TaskExecution, columns, [(execution.organization_id, execution.pk, "t0", "SHELL", 0)],
                               ignore_conflicts=True) == []  # fmt: skip
    now = timezone.now()
    # only rows in the expected state move; the returned fields are the values after the change
    TaskExecution.objects.filter(pk=ids[2]).update(task_state="COMPLETED")
    moved = fastsql.update_returning(
        TaskExecution, ids, {"task_state": "STARTED", "ant_id": "a1", "updated_at": now},
        where={"task_state": ["READY", "PENDING"]}, increment=("attempt",), returning=("id", "attempt", "ant_id"),
    )  # fmt: skip
    assert sorted(moved) == [(ids[0], 1, "a1"), (ids[1], 1, "a1")]
    assert [TaskExecution.objects.get(pk=i).attempt for i in ids] == [1, 1, 0]
    assert (
        fastsql.update_returning(
            TaskExecution, ids, {"task_state": "EXECUTING"}, where={"task_state": "READY"}
        )
        == []
    )
    # one row per key, a key given as a tuple matches any of its values
    fastsql.update_each(TaskExecution, ("id", "attempt", "task_state"), ("exit_code", "context"),
                        [("0", {"a": 1}, ids[0], 1, ("STARTED", "EXECUTING")),
                         ("9", {}, ids[1], 2, ("STARTED", "EXECUTING"))])  # fmt: skip
    assert TaskExecution.objects.get(pk=ids[0]).context == {"a": 1}
    assert TaskExecution.objects.get(pk=ids[1]).exit_code == ""  # attempt 1, not 2: untouched
    # times, numbers and NULLs keep their types; a value too long fails as an ORM update does
    fastsql.update_each(TaskExecution, ("id",), ("ended_at", "cpu_secs", "exit_message", "started_at"),
                        [(now, 1.5, "done", None, ids[0]), (None, 2, "", None, ids[1])])  # fmt: skip
    rows = TaskExecution.objects.filter(pk__in=ids[:2]).order_by("pk")
    assert [(r.ended_at, r.cpu_secs, r.exit_message, r.started_at) for r in rows] == [
        (now, 1.5, "done", None), (None, 2.0, "", None)]  # fmt: skip
    if connection.vendor == "postgresql":  # SQLite does not check a length
        with pytest.raises(DataError), transaction.atomic():
            fastsql.update_each(TaskExecution, ("id",), ("exit_code",), [("x" * 51, ids[0]), ("0", ids[1])])
    # instances inserted in a batch count as saved: a later save() updates the same row
    first = execution.job_request
    requests = [JobRequest(organization_id=first.organization_id, user_id=first.user_id,
                           job_definition_id=first.job_definition_id, job_type=first.job_type, job_priority=i,
                           scheduled_at=now, created_at=now, updated_at=now) for i in range(2)]  # fmt: skip
    fastsql.insert_instances(JobRequest, COLUMNS, requests)
    assert all(r.pk and not r._state.adding and r._state.db == connection.alias for r in requests)
    count = JobRequest.objects.count()
    requests[0].state_message = "saved again"
    requests[0].save()
    assert JobRequest.objects.count() == count
    assert JobRequest.objects.get(pk=requests[0].pk).state_message == "saved again"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg: PostgreSQL only")
def test_psycopgs_private_cache_is_what_the_patch_widens() -> None:
    # checked against psycopg 3.2.12: if this fails, psycopg changed what formicary_site.psycopg_cache patches
    from psycopg import _queries

    assert isinstance(_queries.MAX_CACHED_STATEMENT_PARAMS, int)
    assert callable(_queries._query2pg_client_nocache)
    assert hasattr(_queries._query2pg_client, "cache_info")
    from formicary_site import psycopg_cache

    assert psycopg_cache.widen() is True and fastsql.psycopg_widened()


def _probe(code: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    setup = "import django; django.setup(); from jobs import fastsql; "
    return subprocess.run([sys.executable, "-c", setup + code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()  # fmt: skip


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg: PostgreSQL only")
def test_only_the_queen_widens_psycopgs_cache() -> None:
    # what a web server, an ant and a Celery worker load: none of them widens the cache
    others = (
        "import formicary_site.wsgi, formicary_site.asgi, formicary_site.celery; "
        "import ants.management.commands.ant; print(fastsql.psycopg_widened())"
    )
    assert _probe(others) == "False"
    queen = _probe("fastsql.for_queen(); print(fastsql.psycopg_widened())")
    assert queen == str(settings.FORMICARY_FAST_SQL)  # and only with the switch on
    from jobs.management.commands import queen as command

    assert "fastsql.for_queen()" in Path(command.__file__).read_text()  # the queen's start calls it


@pytest.mark.skipif(not settings.REDIS_URL, reason="channels_redis: needs Redis")
@pytest.mark.parametrize("fast", [True], indirect=True)
def test_the_channel_group_key_is_where_group_add_writes(fast) -> None:  # type: ignore[no-untyped-def]
    # checked against channels_redis 4.3.0: events.watched_groups asks Redis whether this key exists
    from channels_redis.core import RedisChannelLayer

    async def check() -> tuple[int, int]:
        layer = RedisChannelLayer(hosts=[settings.REDIS_URL], prefix="fence-test")
        key = fastsql.group_key(layer, "fence-group")
        assert key is not None
        conn = layer.connection(layer.consistent_hash("fence-group"))
        before = await conn.exists(key)
        await layer.group_add("fence-group", "fence-channel!x")
        after = await conn.exists(key)
        await layer.group_discard("fence-group", "fence-channel!x")
        await layer.close_pools()
        return before, after

    assert asyncio.run(check()) == (0, 1)
