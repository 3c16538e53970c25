"""A query compiled once runs with the values of each call, on either database."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.fastsql import ByShape
from jobs.models import JobDefinition, JobExecution, JobRequest, JobRequestParam, TaskExecution
from jobs.queen.compiled import Compiled, CompiledLoad, ShapeLoad
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

# the trick itself (jobs/fastsql.py), kept on even in a FORMICARY_FAST_SQL=false run
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_sql_on")]

DEFINITION = """\
job_type: cq-job
tasks:
- task_type: one
  method: SHELL
  script: ["true"]
"""


def due(now):  # type: ignore[no-untyped-def]
    return (
        JobRequest.objects.filter(scheduled_at__lte=now, job_state="PENDING").order_by("id").values_list("pk")
    )


def test_each_call_binds_its_own_datetimes(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    now = timezone.now()
    early = request_submit(org_id=alice.org_id, user=alice.user, job_type="cq-job", scheduled_at=now)
    late = request_submit(org_id=alice.org_id, user=alice.user, job_type="cq-job",
                          scheduled_at=now + timedelta(hours=1))  # fmt: skip
    compiled = Compiled(due, "now")
    assert compiled.rows(now=now - timedelta(minutes=1)) == []
    assert compiled.rows(now=now) == [(early.pk,)]
    with CaptureQueriesContext(connection) as ctx:
        assert compiled.rows(now=now + timedelta(hours=2)) == [(early.pk,), (late.pk,)]
    assert len(ctx.captured_queries) == 1
    assert compiled.rows(now=now) == list(due(now))  # what the queryset itself gives


def test_a_query_whose_sql_depends_on_a_value_is_refused(db):  # type: ignore[no-untyped-def]
    def shaped(now):  # type: ignore[no-untyped-def]
        qs = JobRequest.objects.filter(scheduled_at__lte=now)
        return qs.filter(job_priority=1) if now.year > 2001 else qs

    with pytest.raises(ValueError, match="depends on now"):
        Compiled(shaped, "now").rows(now=timezone.now())


def tasks_with_request(ids):  # type: ignore[no-untyped-def]
    return (
        TaskExecution.objects.select_related("job_execution__job_request")
        .only("id", "task_type", "job_execution__id", "job_execution__job_request__id",
              "job_execution__job_request__job_type", "job_execution__job_request__created_at")  # fmt: skip
        .filter(pk__in=ids)
        .annotate(has_params=Exists(JobRequestParam.objects.filter(job_request_id=OuterRef("job_execution__job_request_id"))))
        .order_by("id")
    )  # fmt: skip


def test_a_compiled_load_makes_the_instances_the_queryset_makes(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    ids = []
    for params in ({}, {"x": "1"}, {}):
        request = request_submit(org_id=alice.org_id, user=alice.user, job_type="cq-job", params=params)
        execution = JobExecution.objects.create(organization_id=alice.org_id, job_request=request)
        ids.append(TaskExecution.objects.create(organization_id=alice.org_id, job_execution=execution,
                                                task_type="one", method="SHELL").pk)  # fmt: skip
    load = CompiledLoad(tasks_with_request)

    def seen(tasks):  # type: ignore[no-untyped-def]
        return [(t.pk, t.task_type, t.job_execution.pk, t.job_execution.job_request.job_type,
                 t.job_execution.job_request.created_at, t.has_params) for t in tasks]  # fmt: skip

    for chosen in (ids[:1], ids[1:], ids, [ids[2], ids[0], ids[2]]):
        with CaptureQueriesContext(connection) as ctx:
            loaded = load.load(chosen)
        assert len(ctx.captured_queries) == 1  # the related rows come in the same query
        assert seen(loaded) == seen(tasks_with_request(chosen))
    assert [t.has_params for t in load.load(ids)] == [False, True, False]
    # ids are padded to a power of two: three ids and four share one compiled shape
    assert sorted(size for _, size in load._by_shape) == [1, 2, 4]
    ahead = CompiledLoad(tasks_with_request)
    ahead.prepare(5)  # what a queen does at start, for every batch size it reads
    assert sorted(size for _, size in ahead._by_shape) == [1, 2, 4, 8]
    assert seen(ahead.load(ids)) == seen(tasks_with_request(ids))
    assert load.load([-5, ids[0]])[0].pk == ids[0]  # ids with no row are left out
    with CaptureQueriesContext(connection) as ctx:
        assert load.load([]) == []
    assert ctx.captured_queries == []
    # the instances are the model's own: deferred fields still load on access
    assert load.load(ids[:1])[0].method == "SHELL"


def test_a_load_whose_sql_depends_on_the_ids_is_refused(db):  # type: ignore[no-untyped-def]
    def shaped(ids):  # type: ignore[no-untyped-def]
        qs = TaskExecution.objects.filter(pk__in=ids)
        return qs.filter(attempt=1) if ids[0] < -1 else qs

    with pytest.raises(ValueError, match="depends on the ids"):
        CompiledLoad(shaped).load([1])


# -- ByShape: compiled once per shape of its list arguments (jobs.fastsql) -------------------------


def of_types(now, orgs, types):  # type: ignore[no-untyped-def]
    """Requests due of the (organization, job type) pairs, as the scheduler's pick names them."""
    which = Q()
    for org_id, job_type in zip(orgs, types, strict=True):
        which |= Q(organization_id=org_id, job_type=job_type)
    return (
        JobRequest.objects.filter(which, scheduled_at__lte=now).order_by("id").values_list("pk", "job_type")
    )


def test_by_shape_binds_each_calls_lists_and_compiles_once_per_shape(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION.replace("cq-job", "cq-other"))
    now = timezone.now()
    one = request_submit(org_id=alice.org_id, user=alice.user, job_type="cq-job", scheduled_at=now)
    two = request_submit(org_id=alice.org_id, user=alice.user, job_type="cq-other", scheduled_at=now)
    later = now + timedelta(minutes=1)
    shaped = ByShape(of_types, now=datetime, orgs=int, types=str)
    org = alice.org_id
    assert shaped.rows(now=later, orgs=[org], types=["cq-job"]) == [(one.pk, "cq-job")]
    assert shaped.rows(now=later, orgs=[org], types=["cq-other"]) == [(two.pk, "cq-other")]
    assert shaped.rows(now=now - timedelta(minutes=1), orgs=[org], types=["cq-job"]) == []
    # three pairs pad to four (the last repeated): the same rows as the queryset's own
    args = {"now": later, "orgs": [org, org, -1], "types": ["cq-job", "cq-other", "none"]}
    assert shaped.rows(**args) == list(of_types(**args)) == [(one.pk, "cq-job"), (two.pk, "cq-other")]
    with CaptureQueriesContext(connection) as ctx:  # a fourth pair: the shape of four, compiled already
        assert (
            len(shaped.rows(now=later, orgs=[org, org, -1, -2], types=["cq-job", "cq-other", "a", "b"])) == 2
        )
    assert len(ctx.captured_queries) == 1
    assert sorted(key[1:] for key in shaped.shapes()) == [(1, 1), (4, 4)]  # (orgs, types)


def test_by_shape_refuses_empty_lists_and_sql_that_depends_on_values(db):  # type: ignore[no-untyped-def]
    shaped = ByShape(of_types, now=datetime, orgs=int, types=str)
    with pytest.raises(ValueError, match="every list needs an item"):
        shaped.rows(now=timezone.now(), orgs=[], types=[])

    def by_value(ids):  # type: ignore[no-untyped-def]
        return JobRequest.objects.filter(pk__in=ids).values_list("pk")[: -ids[0] % 7 + 1]

    with pytest.raises(ValueError, match="depends on its lists' values"):
        ByShape(by_value, ids=int).rows(ids=[1])

    def drops_one(ids):  # type: ignore[no-untyped-def]
        return JobRequest.objects.filter(pk__in=ids[1:] or [0]).values_list("pk")

    with pytest.raises(ValueError, match="must use every item"):
        ByShape(drops_one, ids=int).rows(ids=[1, 2])


def due_with_definitions(now, types):  # type: ignore[no-untyped-def]
    return (
        JobRequest.objects.filter(scheduled_at__lte=now, job_type__in=types)
        .select_related("job_definition")
        .defer("job_definition__spec")
        .annotate(has_params=Exists(JobRequestParam.objects.filter(job_request_id=OuterRef("pk"))))
        .order_by("-job_priority", "id")[:3]
    )


def test_a_shape_load_makes_the_queryset_instances_in_one_query(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=DEFINITION)
    now = timezone.now()
    made = [
        request_submit(
            org_id=alice.org_id, user=alice.user, job_type="cq-job", params=params, job_priority=priority
        )
        for params, priority in (({}, 0), ({"x": "1"}, 5), ({}, 0), ({}, 1))
    ]
    load = ShapeLoad(due_with_definitions, now=datetime, types=str)

    def seen(requests):  # type: ignore[no-untyped-def]
        return [
            (r.pk, r.job_priority, r.job_definition.pk, r.job_definition.job_type, r.has_params)
            for r in requests
        ]

    args = {"now": now + timedelta(minutes=1), "types": ["cq-job"]}
    with CaptureQueriesContext(connection) as ctx:
        loaded = load.load(**args)
    assert len(ctx.captured_queries) == 1  # the definitions and the flag come in the same query
    assert seen(loaded) == seen(due_with_definitions(**args))
    # by priority, then age, at most three; the flag says which has params
    assert [(r.pk, r.has_params) for r in loaded] == [
        (made[1].pk, True),
        (made[3].pk, False),
        (made[0].pk, False),
    ]
    assert load.load(now=now - timedelta(minutes=1), types=["cq-job"]) == []
    assert seen(load.load(now=args["now"], types=["none", "cq-job", "x"])) == seen(loaded)  # a shape of four
    assert sorted(key[1:] for key in load.shapes()) == [(1,), (4,)]
    # the instances are the model's own: the deferred spec still loads on access
    with CaptureQueriesContext(connection) as ctx:
        assert loaded[0].job_definition.spec == JobDefinition.objects.get(pk=loaded[0].job_definition.pk).spec
    assert len(ctx.captured_queries) == 2
