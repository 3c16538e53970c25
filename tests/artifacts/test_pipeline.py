"""Artifacts through the whole product, in standalone mode (threads) and distributed mode (queen
and ants as processes) on both stores: a three-task pipeline passes files along with
``dependencies``, the second run of a job restores its cache, every task's log is stored as an
artifact with secrets redacted, and ``<task>_ArtifactURL_<n>`` links download without a token."""

import os
import re
from urllib.parse import urlsplit

import pytest

from artifacts import storage
from artifacts.models import Artifact
from jobs.models import JobRequest
from jobs.services.requests import request_submit
from tests.conftest import upload
from tests.engine.conftest import Cluster
from tests.engine.harness import wait_for_state

MODES = [("standalone", "local"), ("standalone", "s3"), ("distributed", "local"), ("distributed", "s3")]


@pytest.fixture(params=MODES, ids=["-".join(m) for m in MODES])
def cluster(request, tmp_path, transactional_db, settings, monkeypatch, use_transport):  # type: ignore[no-untyped-def]
    from tests.artifacts.conftest import _configure

    mode, backend = request.param
    if mode == "distributed" and not os.environ.get("REDIS_URL"):
        pytest.skip("distributed mode needs REDIS_URL (scripts/test starts Redis)")
    _configure(backend, tmp_path, settings, monkeypatch)  # settings and the processes' environment
    c = Cluster(mode, tmp_path, use_transport).start()
    yield c
    c.stop()
    if getattr(getattr(request.node, "rep_call", None), "failed", False) and c.processes:
        print(c.processes.logs())


def submit(api, member, definition: str) -> JobRequest:  # type: ignore[no-untyped-def]
    resp = upload(api, definition)
    assert resp.status_code in (200, 201), resp.content
    return request_submit(org_id=member.org_id, user=member.user, job_type=resp.json()["job_type"], params={})


def log_of(request: JobRequest, task_type: str) -> str:
    (log,) = Artifact.objects.filter(job_request=request, task_type=task_type, kind="LOG")
    return b"".join(storage.iter_chunks(log.storage_key)).decode()


PIPELINE = """\
job_type: art-pipeline
tasks:
- task_type: build
  method: SHELL
  environment:
    API_TOKEN: tok-very-secret-42
  script:
    - mkdir -p dist/deep
    - echo "built by job {{.JobID}}" > dist/app.txt
    - echo "deep" > dist/deep/x.txt
    - echo "notes" > notes.txt
    - echo "using $API_TOKEN"
  artifacts:
    paths: [dist, notes.txt]
  on_completed: test
- task_type: test
  method: SHELL
  dependencies: [build]
  script:
    - cat dist/app.txt dist/deep/x.txt notes.txt
    - cat dist/app.txt > result.txt
  artifacts:
    paths: [result.txt]
    expires_after: 1h
  on_completed: package
- task_type: package
  method: SHELL
  dependencies: [test]
  script:
    - echo "package got $(cat result.txt)"
    - test ! -e notes.txt
    - echo "link {{.build_ArtifactURL_2}}"
"""


def test_three_task_pipeline_passes_files_along(cluster, api, anon_api, alice):
    request = submit(api, alice, PIPELINE)
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    files = Artifact.objects.filter(job_request=request, kind="ARTIFACT").order_by("id")
    assert [(a.task_type, a.name) for a in files] == [
        ("build", "dist.tar.gz"), ("build", "notes.txt"), ("test", "result.txt")
    ]  # fmt: skip
    assert all(a.organization_id == alice.org_id and a.size > 0 and len(a.sha256) == 64 for a in files)
    assert files[2].expires_at is not None
    assert f"built by job {request.pk}\ndeep\nnotes" in log_of(request, "test")
    assert f"package got built by job {request.pk}" in log_of(request, "package")
    build_log = log_of(request, "build")
    assert "using ****" in build_log and "tok-very-secret-42" not in build_log

    # build_ArtifactURL_2 (notes.txt) was rendered into package's script: a signed link
    link = re.search(r"link (http[^\s\"]+)", log_of(request, "package")).group(1)  # type: ignore[union-attr]
    url = urlsplit(link)
    assert url.path == f"/api/artifacts/{files[1].pk}/download"
    resp = anon_api.get(f"{url.path}?{url.query}")
    assert resp.status_code == 200, (link, resp.content)
    assert b"".join(resp.streaming_content) == b"notes\n"


CACHED = """\
job_type: art-cache
tasks:
- task_type: deps
  method: SHELL
  cache:
    key: deps-v1
    paths: [vendor]
    expires_after: 24h
  script:
    - if [ -f vendor/lib.txt ]; then echo "cache hit $(cat vendor/lib.txt)"; else echo "cache miss"; fi
    - mkdir -p vendor
    - echo "lib of {{.JobID}}" > vendor/lib.txt
"""


def test_second_run_restores_the_cache(cluster, api, alice):
    first = submit(api, alice, CACHED)
    assert wait_for_state(first.pk, timeout=60).job_state == "COMPLETED"
    assert "cache miss" in log_of(first, "deps")
    (cache,) = Artifact.objects.filter(kind="CACHE", job_type="art-cache")
    assert cache.group == "deps-v1" and cache.organization_id == alice.org_id and cache.expires_at

    second = request_submit(org_id=alice.org_id, user=alice.user, job_type="art-cache", params={})
    assert wait_for_state(second.pk, timeout=60).job_state == "COMPLETED"
    # the task saw the first run's file before it wrote its own
    assert f"cache hit lib of {first.pk}" in log_of(second, "deps")
    # same key: the stored cache still fits and is not uploaded again
    assert list(Artifact.objects.filter(kind="CACHE").values_list("pk", flat=True)) == [cache.pk]


def test_cache_is_scoped_to_the_organization(cluster, api, bob_api, alice, bob):
    first = submit(api, alice, CACHED)
    assert wait_for_state(first.pk, timeout=60).job_state == "COMPLETED"
    other = submit(bob_api, bob, CACHED)
    assert wait_for_state(other.pk, timeout=60).job_state == "COMPLETED"
    assert "cache miss" in log_of(other, "deps")


EXPIRE = """\
job_type: art-expire
tasks:
- task_type: sweep
  method: EXPIRE_ARTIFACTS
"""


@pytest.mark.parametrize("cluster", [MODES[0]], indirect=True, ids=["standalone-local"])
def test_expire_artifacts_task(cluster, api, alice, bob_api):
    old = api.post("/api/artifacts?name=old.txt&expires_after=0.001", data=b"o",
                   content_type="application/octet-stream").json()  # fmt: skip
    theirs = bob_api.post("/api/artifacts?name=b.txt&expires_after=0.001", data=b"b",
                          content_type="application/octet-stream").json()  # fmt: skip
    keep = api.post("/api/artifacts?name=keep.txt", data=b"k", content_type="application/octet-stream").json()
    old_key = Artifact.objects.get(pk=old["id"]).storage_key
    request = submit(api, alice, EXPIRE)
    done = wait_for_state(request.pk, timeout=60)
    assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
    remaining = set(Artifact.objects.values_list("pk", flat=True))
    assert old["id"] not in remaining and keep["id"] in remaining
    assert theirs["id"] in remaining  # another organization's artifacts are not this job's to expire
    assert not storage.exists(old_key)
