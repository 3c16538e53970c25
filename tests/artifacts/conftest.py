"""Artifact stores for the tests: the local folder always, S3 when a test S3 server runs
(``scripts/test`` starts moto and exports FORMICARY_TEST_S3_ENDPOINT; without it the S3 cases
are skipped). ``store_settings`` points the Django settings *and* the environment (which the
distributed queen and ant processes inherit) at the chosen store."""

import os
import uuid
from pathlib import Path

import pytest

from ants.artifact_store import LocalStore, S3Store

BACKENDS = ["local", "s3"]
S3_ENV = "FORMICARY_TEST_S3_ENDPOINT"


def s3_endpoint() -> str:
    endpoint = os.environ.get(S3_ENV, "")
    if not endpoint:
        pytest.skip(f"S3 tests need {S3_ENV} (scripts/test starts a moto server)")
    return endpoint


def new_s3_store(endpoint: str, bucket: str, prefix: str = "formicary-test") -> S3Store:
    store = S3Store(bucket, prefix=prefix, endpoint=endpoint, region="us-east-1", access_key="testing",
                    secret_key="testing")  # fmt: skip
    store.ensure_bucket()
    return store


@pytest.fixture(params=BACKENDS)
def raw_store(request, tmp_path):  # type: ignore[no-untyped-def]
    """An ant-side store without Django settings."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return new_s3_store(s3_endpoint(), f"t-{uuid.uuid4().hex[:12]}")


def _configure(backend: str, tmp_path: Path, settings, monkeypatch):  # type: ignore[no-untyped-def]
    root = tmp_path / "store"
    root.mkdir(parents=True, exist_ok=True)
    values = {"FORMICARY_S3_BUCKET": "", "FORMICARY_S3_ENDPOINT": "", "FORMICARY_S3_PREFIX": "",
              "FORMICARY_S3_REGION": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}  # fmt: skip
    if backend == "s3":
        bucket = f"t-{uuid.uuid4().hex[:12]}"
        new_s3_store(s3_endpoint(), bucket)
        values.update(FORMICARY_S3_BUCKET=bucket, FORMICARY_S3_ENDPOINT=os.environ[S3_ENV],
                      FORMICARY_S3_PREFIX="formicary-test", FORMICARY_S3_REGION="us-east-1",
                      AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # fmt: skip
    for name, value in values.items():
        setattr(settings, name, value)
        monkeypatch.setenv(name, value)
    settings.MEDIA_ROOT = root
    monkeypatch.setenv("FORMICARY_ARTIFACTS_DIR", str(root))
    from artifacts.storage import ant_store

    return ant_store()


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """Settings (and environment) pointing at a fresh store of each backend; the ant-side client."""
    return _configure(request.param, tmp_path, settings, monkeypatch)


@pytest.fixture
def local_store(tmp_path, settings, monkeypatch):  # type: ignore[no-untyped-def]
    return _configure("local", tmp_path, settings, monkeypatch)


def stored_keys(store) -> list[str]:  # type: ignore[no-untyped-def]
    """Every object in the store (relative keys)."""
    if isinstance(store, LocalStore):
        if not store.root.exists():
            return []
        return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    out = []
    paginator = store.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=store.bucket, Prefix=store.prefix + "/" if store.prefix else ""):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            out.append(key[len(store.prefix) + 1 :] if store.prefix else key)
    return sorted(out)
