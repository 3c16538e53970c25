"""``/api/artifacts``: list and query, upload (multipart and raw body), metadata, streaming
download with a token or a signed link, delete; tenancy and hostile input."""

import hashlib
import time
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from artifacts import services
from artifacts.models import Artifact
from jobs.services.requests import request_submit
from tests.artifacts.conftest import stored_keys
from tests.conftest import upload

JOB = 'job_type: art-job\ntasks:\n- task_type: build\n  method: SHELL\n  script: ["true"]\n'


@pytest.fixture
def job_request(api, alice):  # type: ignore[no-untyped-def]
    assert upload(api, JOB).status_code in (200, 201)
    return request_submit(org_id=alice.org_id, user=alice.user, job_type="art-job", params={})


def raw_upload(client, body: bytes, **params):  # type: ignore[no-untyped-def]
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(f"/api/artifacts?{query}", data=body, content_type="application/octet-stream")


def content_of(resp) -> bytes:  # type: ignore[no-untyped-def]
    assert resp.streaming
    return b"".join(resp.streaming_content)


def test_upload_metadata_download_delete(store, api, job_request, django_capture_on_commit_callbacks):
    body = b"hello artifact\n" * 1000
    resp = api.post("/api/artifacts", {"file": SimpleUploadedFile("report.txt", body, "text/plain"),
                                       "job_request_id": job_request.pk, "task_type": "build"},
                    format="multipart")  # fmt: skip
    assert resp.status_code == 201, resp.content
    meta = resp.json()
    assert meta["name"] == "report.txt" and meta["kind"] == "UPLOAD" and meta["size"] == len(body)
    assert meta["sha256"] == hashlib.sha256(body).hexdigest()
    assert meta["job_request_id"] == job_request.pk and meta["content_type"] == "text/plain"
    key = Artifact.objects.get(pk=meta["id"]).storage_key
    assert key.startswith(f"org-{job_request.organization_id}/{job_request.pk}/build/")
    assert stored_keys(store) == [key]

    assert api.get(f"/api/artifacts/{meta['id']}").json()["sha256"] == meta["sha256"]
    download = api.get(f"/api/artifacts/{meta['id']}/download")
    assert download.status_code == 200 and download["Content-Length"] == str(len(body))
    assert 'attachment; filename="report.txt"' in download["Content-Disposition"]
    assert content_of(download) == body

    with django_capture_on_commit_callbacks(execute=True):  # objects go once the rows' deletion commits
        assert api.delete(f"/api/artifacts/{meta['id']}").status_code == 204
    assert api.get(f"/api/artifacts/{meta['id']}").status_code == 404
    assert stored_keys(store) == []


def test_raw_body_upload_and_query(store, api, job_request):
    first = raw_upload(api, b"one", name="dist/one.bin", job_request_id=job_request.pk, task_type="build")
    assert first.status_code == 201, first.content
    second = raw_upload(api, b"two", name="two.bin", task_type="pack")
    assert second.status_code == 201
    names = lambda q: [a["name"] for a in api.get(f"/api/artifacts{q}").json()["Records"]]  # noqa: E731
    assert names("") == ["two.bin", "dist/one.bin"]
    assert names("?name=two.bin") == ["two.bin"]
    assert names("?task_type=build") == ["dist/one.bin"]
    assert names(f"?job_request_id={job_request.pk}") == ["dist/one.bin"]
    assert names("?kind=UPLOAD") == ["two.bin", "dist/one.bin"]
    assert api.get("/api/artifacts?kind=BOGUS").status_code == 400
    assert api.get("/api/artifacts?job_request_id=x").status_code == 400


def test_signed_link_downloads_without_a_token(store, api, anon_api):
    meta = raw_upload(api, b"signed bytes", name="s.txt").json()
    url = urlsplit(meta["download_url"])
    assert url.path == f"/api/artifacts/{meta['id']}/download"
    assert anon_api.get(url.path).status_code in (401, 403)
    ok = anon_api.get(f"{url.path}?{url.query}")
    assert ok.status_code == 200 and content_of(ok) == b"signed bytes"

    other = raw_upload(api, b"other", name="o.txt").json()
    wrong = anon_api.get(f"/api/artifacts/{other['id']}/download?{url.query}")
    assert wrong.status_code == 403 and "another artifact" in wrong.json()["error"]
    tampered = anon_api.get(f"{url.path}?sig={url.query[4:-2]}xx")
    assert tampered.status_code == 403 and "signature" in tampered.json()["error"]
    expired = services.download_token(meta["id"], ttl_secs=-1)
    gone = anon_api.get(f"{url.path}?sig={expired}")
    assert gone.status_code == 403 and "expired" in gone.json()["error"]


def test_other_organization_sees_nothing(store, api, bob_api, job_request):
    meta = raw_upload(api, b"acme only", name="a.txt", job_request_id=job_request.pk).json()
    assert bob_api.get("/api/artifacts").json()["Records"] == []
    assert bob_api.get(f"/api/artifacts/{meta['id']}").status_code == 404
    assert bob_api.get(f"/api/artifacts/{meta['id']}/download").status_code == 404
    assert bob_api.delete(f"/api/artifacts/{meta['id']}").status_code == 404
    assert Artifact.objects.filter(pk=meta["id"]).exists()


def test_upload_to_another_organizations_request_is_refused(store, bob_api, job_request):
    resp = raw_upload(bob_api, b"intruder", name="x.txt", job_request_id=job_request.pk)
    assert resp.status_code == 400
    assert f"job request {job_request.pk} does not exist in your organization" in resp.json()["error"]
    multi = bob_api.post("/api/artifacts", {"file": SimpleUploadedFile("x.txt", b"intruder"),
                                            "job_request_id": job_request.pk}, format="multipart")  # fmt: skip
    assert multi.status_code == 400
    assert Artifact.objects.count() == 0 and stored_keys(store) == []


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../b.txt", "/etc/passwd", "..", "a\\..\\b"])
def test_hostile_names_are_refused(store, api, name):
    resp = raw_upload(api, b"x", name=name)
    assert resp.status_code == 400 and "name" in resp.json()["error"], resp.content
    multi = api.post("/api/artifacts", {"file": SimpleUploadedFile("f.txt", b"x"), "name": name},
                     format="multipart")  # fmt: skip
    assert multi.status_code == 400
    assert Artifact.objects.count() == 0 and stored_keys(store) == []


def test_upload_needs_a_name_and_a_token(store, api, anon_api):
    assert api.post("/api/artifacts", data=b"x", content_type="application/octet-stream").status_code == 400
    assert anon_api.post("/api/artifacts?name=a", data=b"x", content_type="application/octet-stream").status_code in (
        401, 403)  # fmt: skip
    assert stored_keys(store) == []


def test_expiry_service_deletes_rows_and_objects(store, api, django_capture_on_commit_callbacks):
    old = raw_upload(api, b"old", name="old.txt", expires_after="0.01").json()
    keep = raw_upload(api, b"keep", name="keep.txt").json()
    time.sleep(0.05)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.artifacts_expire() == 1
    assert not Artifact.objects.filter(pk=old["id"]).exists()
    assert Artifact.objects.filter(pk=keep["id"]).exists()
    assert len(stored_keys(store)) == 1
