"""Retention (``jobs/services/retention.py``, ``manage.py prune``, the beat task): old finished
requests go with their executions, tasks, logs and artifact objects; recent and unfinished
ones stay. Jobs really run (queen and ant in threads) and store their artifacts and logs in S3
(moto) or the local folder; "old" is their last change moved back in time."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from artifacts.models import Artifact
from jobs import tasks
from jobs.models import JobExecution, JobRequest, TaskExecution, TaskLogChunk
from jobs.services.requests import request_submit
from orgs.models import AuditRecord
from tests.artifacts.conftest import _configure, stored_keys
from tests.conftest import upload
from tests.engine.conftest import Cluster
from tests.engine.harness import wait_for_state

JOB = """\
job_type: retention-job
tasks:
- task_type: build
  method: SHELL
  script:
    - echo "built" > out.txt
    - echo "a log line"
  artifacts:
    paths: [out.txt]
  on_completed: check
- task_type: check
  method: SHELL
  script: ["echo checked"]
"""


@pytest.fixture(params=["s3", "local"])
def ran(request, tmp_path, transactional_db, settings, monkeypatch, alice, api, use_transport):  # type: ignore[no-untyped-def]
    """Three finished requests (two made old), then, with the queen stopped, an old PENDING one."""
    store = _configure(request.param, tmp_path, settings, monkeypatch)
    cluster = Cluster("standalone", tmp_path, use_transport).start()
    try:
        assert upload(api, JOB).status_code in (200, 201)
        ids = [request_submit(org_id=alice.org_id, user=alice.user, job_type="retention-job", params={}).pk
               for _ in range(3)]  # fmt: skip
        for rid in ids:
            assert wait_for_state(rid, timeout=60).job_state == "COMPLETED"
    finally:
        cluster.stop()
    pending = request_submit(org_id=alice.org_id, user=alice.user, job_type="retention-job", params={}).pk
    long_ago = timezone.now() - timedelta(days=100)
    JobRequest.objects.filter(pk__in=[*ids[:2], pending]).update(updated_at=long_ago, created_at=long_ago)
    return store, ids[:2], ids[2], pending


def _objects_of(request_ids: list[int]) -> list[str]:
    return list(Artifact.objects.filter(job_request_id__in=request_ids).values_list("storage_key", flat=True))


@pytest.mark.postgres_only
def test_prune_removes_old_finished_requests_and_their_objects(ran, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    store, old, recent, pending = ran
    old_keys = _objects_of(old)
    recent_keys = _objects_of([recent])
    assert len(old_keys) == 6 and len(recent_keys) == 3  # per request: out.txt and the two tasks' logs
    assert set(old_keys) | set(recent_keys) <= set(stored_keys(store))
    old_tasks = list(
        TaskExecution.objects.filter(job_execution__job_request_id__in=old).values_list("pk", flat=True)
    )
    assert TaskLogChunk.objects.filter(task_execution_id__in=old_tasks).exists()

    dry = io.StringIO()
    call_command("prune", "--older-than", "90d", "--dry-run", stdout=dry)
    assert "would delete 2 finished requests" in dry.getvalue()
    assert JobRequest.objects.filter(pk__in=old).count() == 2

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("prune", "--older-than", "90d", "--batch-size", "1", stdout=out)
    assert "deleted 2 finished requests" in out.getvalue() and "in 2 batches" in out.getvalue()
    assert not JobRequest.objects.filter(pk__in=old).exists()
    assert not JobExecution.objects.filter(job_request_id__in=old).exists()
    assert not TaskExecution.objects.filter(pk__in=old_tasks).exists()
    assert not TaskLogChunk.objects.filter(task_execution_id__in=old_tasks).exists()
    assert not Artifact.objects.filter(storage_key__in=old_keys).exists()
    left = set(stored_keys(store))
    assert not left & set(old_keys), "the old requests' objects are still in the store"
    assert set(recent_keys) <= left
    # the recent finished request and the old unfinished one are untouched
    assert JobRequest.objects.get(pk=recent).job_state == "COMPLETED"
    assert TaskExecution.objects.filter(job_execution__job_request_id=recent).count() == 2
    assert JobRequest.objects.get(pk=pending).job_state == "PENDING"
    (record,) = AuditRecord.objects.filter(action="JobRequest:Prune")
    assert record.data["deleted"]["jobs.JobRequest"] == 2 and "2 finished requests" in record.summary


@pytest.mark.postgres_only
def test_beat_task_uses_the_retention_setting(ran, monkeypatch, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    _store, old, recent, pending = ran
    assert "prune-history" in {
        k for k, v in settings.CELERY_BEAT_SCHEDULE.items() if v["task"] == "jobs.tasks.prune_history"
    }
    monkeypatch.setattr(settings, "FORMICARY_RETENTION_DAYS", 0)
    assert tasks.prune_history() == 0  # 0: kept forever
    monkeypatch.setattr(settings, "FORMICARY_RETENTION_DAYS", 200)
    assert tasks.prune_history() == 0  # none is that old
    monkeypatch.setattr(settings, "FORMICARY_RETENTION_DAYS", 90)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.prune_history() == 2
    assert set(JobRequest.objects.values_list("pk", flat=True)) == {recent, pending}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "ninety days"], "--older-than: invalid age 'ninety days'"),
        (["--older-than", "90"], "--older-than: invalid age '90'"),
        (["--older-than", "0d"], "must be more than 0"),
        (["--older-than=-5d"], "invalid age '-5d'"),
        (["--older-than", "200000w"], "at most 100 years"),
        (["--older-than", "90d", "--batch-size", "0"], "--batch-size: must be at least 1"),
        ([], "give --older-than (e.g. 90d), or set FORMICARY_RETENTION_DAYS"),
    ],
)
def test_bad_arguments_are_a_clear_command_error(db, args, message):  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError) as err:
        call_command("prune", *args)
    assert message in str(err.value)
