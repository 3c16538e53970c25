"""The artifact store on the queen and web side, from settings (see the "Artifacts" block of
``formicary_site/settings.py``): django-storages' S3Storage when FORMICARY_S3_BUCKET is set,
else a FileSystemStorage under MEDIA_ROOT. ``ant_store()`` is the same store as the ant-side
client (``ants.artifact_store``), for the ants the standalone process and tests run in threads.

Reads stream: ``iter_chunks`` goes straight to the S3 object body (django-storages' S3File
would first copy the whole object into a temporary file) or reads the local file in chunks.
"""

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.core.files.storage import storages as django_storages

from ants.artifact_store import (
    CHUNK,
    LocalStore,
    S3Store,
    config_from_settings,
    safe_relpath,
    store_from_config,
    transfer_config,
)


def uses_s3() -> bool:
    return bool(getattr(settings, "FORMICARY_S3_BUCKET", ""))


def storage_options() -> dict[str, Any]:
    """The ``STORAGES["artifacts"]`` entry the settings build."""
    if uses_s3():
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": settings.FORMICARY_S3_BUCKET,
                "endpoint_url": settings.FORMICARY_S3_ENDPOINT or None,
                "region_name": settings.FORMICARY_S3_REGION or None,
                "access_key": settings.AWS_ACCESS_KEY_ID or None,
                "secret_key": settings.AWS_SECRET_ACCESS_KEY or None,
                "location": settings.FORMICARY_S3_PREFIX.strip("/"),
                "file_overwrite": True,  # keys carry a uuid: skip the exists() round trip
                "default_acl": None,
                "signature_version": "s3v4",
                # reads that go through S3File spill to disk beyond this
                "max_memory_size": settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
            },
        }
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(settings.MEDIA_ROOT)},
    }


def artifact_storage() -> Storage:
    """The configured django-storages backend (built once per settings; tests may override)."""
    options = storage_options()
    cached = getattr(artifact_storage, "_cache", None)
    if cached is not None and cached[0] == repr(options):
        return cached[1]
    if uses_s3():
        # django-storages hands boto3 a non-seekable wrapper, which boto3 reads ahead in whole parts
        options["OPTIONS"]["transfer_config"] = transfer_config()
    storage = django_storages.create_storage(options)
    artifact_storage._cache = (repr(options), storage)  # type: ignore[attr-defined]
    return storage


def ant_store_config() -> dict[str, Any]:
    return config_from_settings(settings)


def ant_store() -> LocalStore | S3Store:
    """The ant-side client for the same store (for ants that run inside a Django process)."""
    return store_from_config(ant_store_config())


def save_file(key: str, fileobj: Any) -> None:
    """Stream ``fileobj`` (a file on disk or an uploaded file) to ``key``."""
    key = safe_relpath(key, "storage key")
    name = artifact_storage().save(key, fileobj if isinstance(fileobj, File) else File(fileobj))
    if name != key:  # pragma: no cover - a FileSystemStorage would rename on collision
        raise RuntimeError(f"storage renamed {key!r} to {name!r}")


def iter_chunks(key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
    storage = artifact_storage()
    key = safe_relpath(key, "storage key")
    if isinstance(storage, FileSystemStorage):
        with storage.open(key, "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk
        return
    body = storage.bucket.Object(storage._normalize_name(key)).get()["Body"]  # type: ignore[attr-defined]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def local_path(key: str) -> str | None:
    """The file behind ``key`` for the local backend (FileResponse can use sendfile); else None."""
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        return storage.path(safe_relpath(key, "storage key"))
    return None


def delete(key: str) -> None:
    artifact_storage().delete(safe_relpath(key, "storage key"))


def exists(key: str) -> bool:
    return artifact_storage().exists(safe_relpath(key, "storage key"))
