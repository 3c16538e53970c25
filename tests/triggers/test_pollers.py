"""S3 and queue triggers: polled by the Celery task's step against moto S3 and the test Redis.
A new object starts exactly one request, also when the poll runs twice, concurrently in two
threads, or in a new process after a "queen restart"."""

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.db import connections

from jobs.models import JobRequest, JobRequestParam
from jobs.triggers.tasks import poll_triggers
from tests.engine.conftest import database_url
from tests.triggers.conftest import define

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
S3_ENV = "FORMICARY_TEST_S3_ENDPOINT"


def s3_definition(bucket: str) -> str:
    return f"""\
job_type: on-upload
triggers:
- name: uploads
  type: s3
  bucket: {bucket}
  prefix: incoming/
  suffix: .csv
  poll_interval: 5s
  params:
    Key: '{{{{`{{{{ .Object.Key }}}}`}}}}'
    Size: '{{{{`{{{{ .Object.Size }}}}`}}}}'
tasks:
- task_type: t
  method: SHELL
  script: [true]
"""


@pytest.fixture
def bucket(settings):  # type: ignore[no-untyped-def]
    import boto3

    endpoint = os.environ.get(S3_ENV, "")
    if not endpoint:
        pytest.skip(f"S3 tests need {S3_ENV}")
    name = f"trig-{uuid.uuid4().hex[:12]}"
    settings.FORMICARY_S3_ENDPOINT, settings.FORMICARY_S3_REGION = endpoint, "us-east-1"
    settings.AWS_ACCESS_KEY_ID = settings.AWS_SECRET_ACCESS_KEY = "testing"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket=name)
    return client, name


def _poll_in_a_new_process() -> None:
    """A fresh interpreter with nothing in memory: what a restarted queen or worker has."""
    code = "import django; django.setup(); from jobs.triggers.pollers import triggers_poll; triggers_poll(force=True)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    from django.conf import settings

    env.update(FORMICARY_S3_ENDPOINT=settings.FORMICARY_S3_ENDPOINT, FORMICARY_S3_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # fmt: skip
    env["DATABASE_URL"] = database_url()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)


def test_a_new_object_starts_exactly_one_request(api, bucket):
    from jobs.triggers.pollers import triggers_poll

    client, name = bucket
    define(api, s3_definition(name))
    client.put_object(Bucket=name, Key="incoming/old.csv", Body=b"old")
    assert poll_triggers() == 0  # the first poll sets the cursor: what is there already is not new
    client.put_object(Bucket=name, Key="incoming/new.csv", Body=b"a,b\n")
    client.put_object(Bucket=name, Key="incoming/skip.txt", Body=b"no")  # suffix does not match
    client.put_object(Bucket=name, Key="other/new.csv", Body=b"no")  # prefix does not match
    assert triggers_poll(force=True) == 1
    assert triggers_poll(force=True) == 0  # polled again: nothing new
    threads = [
        threading.Thread(target=lambda: (triggers_poll(force=True), connections.close_all()))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _poll_in_a_new_process()  # a "queen restart": the cursor and firings come from the database
    requests = JobRequest.objects.filter(job_type="on-upload")
    assert requests.count() == 1
    params = {p.name: p.plain_value() for p in JobRequestParam.objects.filter(job_request=requests[0])}
    assert params == {"Key": "incoming/new.csv", "Size": "4"}
    state = api.get("/api/jobs/definitions/on-upload/triggers/uploads/state").json()
    assert state["cursor"] and [f["outcome"] for f in state["firings"]].count("fired") == 1


def test_a_new_version_of_an_object_fires_again(api, bucket):
    from jobs.triggers.pollers import triggers_poll

    client, name = bucket
    define(api, s3_definition(name))
    triggers_poll(force=True)
    client.put_object(Bucket=name, Key="incoming/a.csv", Body=b"1")
    triggers_poll(force=True)
    client.put_object(Bucket=name, Key="incoming/a.csv", Body=b"22")
    triggers_poll(force=True)
    _poll_in_a_new_process()
    assert JobRequest.objects.filter(job_type="on-upload").count() == 2


QUEUE = """\
job_type: on-message
triggers:
- name: orders
  type: queue
  topic: {topic}
  group: formicary
  filter: '{{{{`{{{{ ne .Message.kind "ignore" }}}}`}}}}'
  params:
    Order: '{{{{`{{{{ .Body.order }}}}`}}}}'
  dedup_key: '{{{{`order-{{{{ .Body.order }}}}`}}}}'
tasks:
- task_type: t
  method: SHELL
  script: [true]
"""


def test_queue_trigger_reads_a_redis_stream_once(api, settings):
    import redis

    if not settings.REDIS_URL:
        pytest.skip("queue triggers need the test Redis (REDIS_URL)")
    from jobs.triggers.pollers import triggers_poll

    topic = f"trig-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    define(api, QUEUE.format(topic=topic))
    client.xadd(topic, {"body": '{"order": 1}'})
    client.xadd(topic, {"body": '{"order": 2}', "kind": "ignore"})
    client.xadd(topic, {"body": '{"order": 1}'})  # the same order again: a duplicate
    assert triggers_poll(force=True) == 1
    assert triggers_poll(force=True) == 0
    client.xadd(topic, {"body": '{"order": 3}'})
    assert triggers_poll(force=True) == 1
    orders = sorted(
        p.plain_value()
        for p in JobRequestParam.objects.filter(job_request__job_type="on-message", name="Order")
    )
    assert orders == ["1", "3"]
    assert client.xpending(topic, "formicary")["pending"] == 0  # all acknowledged
    outcomes = [
        f["outcome"]
        for f in api.get("/api/jobs/definitions/on-message/triggers/orders/state").json()["firings"]
    ]
    assert sorted(outcomes) == ["duplicate", "filtered", "fired", "fired"]
    client.delete(topic)
