"""A query compiled once runs with the values of each call, on either database."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import JobRequest
from jobs.queen.compiled import Compiled
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit

pytestmark = pytest.mark.django_db

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
